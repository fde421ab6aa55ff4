-- The search index holds each message's room as well as its words, so a search in one room walks only
-- that room's matches: before, a word common in other rooms made FTS5 hand over every message holding
-- it, each then joined to messages and dropped, with the event loop held all the while (about 150 ms
-- a search at 500,000 such messages). The room goes in as one token, `r` and the hex of its UTF-8
-- bytes, which no two rooms share and the tokenizer keeps whole; the view gives FTS5 the same value,
-- and only the messages the index holds (no whispers, none deleted), when it reads them back (a
-- rebuild, an integrity check). The index is rebuilt by the indexer, behind the commits,
-- from the first message on: until it gets there a search finds only what it has reached.
-- Hand-written, as 0004 and 0005.
DROP TRIGGER `messages_fts_delete`;--> statement-breakpoint
DROP TRIGGER `messages_fts_update`;--> statement-breakpoint
DROP TABLE `messages_fts`;--> statement-breakpoint
CREATE VIEW `messages_search` AS SELECT `n`, `text`, 'r' || hex(`room`) AS `room_key` FROM `messages` WHERE `recipient` IS NULL AND `deleted` IS NULL;--> statement-breakpoint
CREATE VIRTUAL TABLE `messages_fts` USING fts5(`text`, `room_key`, content='messages_search', content_rowid='n', tokenize='unicode61 remove_diacritics 2');--> statement-breakpoint
UPDATE `search_progress` SET `indexed` = 0;--> statement-breakpoint
CREATE TRIGGER `messages_fts_delete` AFTER DELETE ON `messages` WHEN OLD.`recipient` IS NULL AND OLD.`deleted` IS NULL AND OLD.`n` <= (SELECT `indexed` FROM `search_progress`) BEGIN INSERT INTO `messages_fts` (`messages_fts`, `rowid`, `text`, `room_key`) VALUES ('delete', OLD.`n`, OLD.`text`, 'r' || hex(OLD.`room`)); END;--> statement-breakpoint
CREATE TRIGGER `messages_fts_update` AFTER UPDATE OF `text`, `deleted`, `recipient` ON `messages` WHEN OLD.`n` <= (SELECT `indexed` FROM `search_progress`) BEGIN INSERT INTO `messages_fts` (`messages_fts`, `rowid`, `text`, `room_key`) SELECT 'delete', OLD.`n`, OLD.`text`, 'r' || hex(OLD.`room`) WHERE OLD.`recipient` IS NULL AND OLD.`deleted` IS NULL; INSERT INTO `messages_fts` (`rowid`, `text`, `room_key`) SELECT NEW.`n`, NEW.`text`, 'r' || hex(NEW.`room`) WHERE NEW.`recipient` IS NULL AND NEW.`deleted` IS NULL; END;
