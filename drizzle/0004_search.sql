-- Full-text search over room messages: an FTS5 index whose text is read from messages (external
-- content, rowid = messages.n). Whispers and deleted messages are never in it. Hand-written:
-- drizzle-kit does not know virtual tables or triggers.
CREATE VIRTUAL TABLE `messages_fts` USING fts5(`text`, content='messages', content_rowid='n', tokenize='unicode61 remove_diacritics 2');--> statement-breakpoint
-- Messages stored before this migration are indexed once, here.
INSERT INTO `messages_fts` (`rowid`, `text`) SELECT `n`, `text` FROM `messages` WHERE `recipient` IS NULL AND `deleted` IS NULL;--> statement-breakpoint
-- The index follows every insert, update and delete of messages, in the same statement. A row is
-- taken out with the text it was indexed with, as an external-content table requires.
CREATE TRIGGER `messages_fts_insert` AFTER INSERT ON `messages` WHEN NEW.`recipient` IS NULL AND NEW.`deleted` IS NULL BEGIN INSERT INTO `messages_fts` (`rowid`, `text`) VALUES (NEW.`n`, NEW.`text`); END;--> statement-breakpoint
CREATE TRIGGER `messages_fts_delete` AFTER DELETE ON `messages` WHEN OLD.`recipient` IS NULL AND OLD.`deleted` IS NULL BEGIN INSERT INTO `messages_fts` (`messages_fts`, `rowid`, `text`) VALUES ('delete', OLD.`n`, OLD.`text`); END;--> statement-breakpoint
CREATE TRIGGER `messages_fts_update` AFTER UPDATE OF `text`, `deleted`, `recipient` ON `messages` BEGIN INSERT INTO `messages_fts` (`messages_fts`, `rowid`, `text`) SELECT 'delete', OLD.`n`, OLD.`text` WHERE OLD.`recipient` IS NULL AND OLD.`deleted` IS NULL; INSERT INTO `messages_fts` (`rowid`, `text`) SELECT NEW.`n`, NEW.`text` WHERE NEW.`recipient` IS NULL AND NEW.`deleted` IS NULL; END;
