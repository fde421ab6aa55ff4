-- The search index is filled behind the commits instead of inside them: a message's words are added
-- by the indexer, on the writer, in passes of many messages (one FTS5 segment per pass instead of
-- one per commit, and no index work in a message's own transaction). search_progress holds the
-- highest messages.n that is in the index; a search first brings the index up to the newest
-- message. Hand-written, as 0004: drizzle-kit does not know virtual tables or triggers.
CREATE TABLE `search_progress` (`id` integer PRIMARY KEY NOT NULL CHECK (`id` = 1), `indexed` integer NOT NULL);--> statement-breakpoint
-- Everything stored so far was indexed by 0004's insert trigger.
INSERT INTO `search_progress` (`id`, `indexed`) SELECT 1, coalesce(max(`n`), 0) FROM `messages`;--> statement-breakpoint
DROP TRIGGER `messages_fts_insert`;--> statement-breakpoint
-- A delete or an update changes the index only for a message already in it; one not yet in it is
-- indexed later as it is then (or not at all, once deleted).
DROP TRIGGER `messages_fts_delete`;--> statement-breakpoint
CREATE TRIGGER `messages_fts_delete` AFTER DELETE ON `messages` WHEN OLD.`recipient` IS NULL AND OLD.`deleted` IS NULL AND OLD.`n` <= (SELECT `indexed` FROM `search_progress`) BEGIN INSERT INTO `messages_fts` (`messages_fts`, `rowid`, `text`) VALUES ('delete', OLD.`n`, OLD.`text`); END;--> statement-breakpoint
DROP TRIGGER `messages_fts_update`;--> statement-breakpoint
CREATE TRIGGER `messages_fts_update` AFTER UPDATE OF `text`, `deleted`, `recipient` ON `messages` WHEN OLD.`n` <= (SELECT `indexed` FROM `search_progress`) BEGIN INSERT INTO `messages_fts` (`messages_fts`, `rowid`, `text`) SELECT 'delete', OLD.`n`, OLD.`text` WHERE OLD.`recipient` IS NULL AND OLD.`deleted` IS NULL; INSERT INTO `messages_fts` (`rowid`, `text`) SELECT NEW.`n`, NEW.`text` WHERE NEW.`recipient` IS NULL AND NEW.`deleted` IS NULL; END;
