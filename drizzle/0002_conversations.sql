CREATE TABLE `conversations` (
	`key` text PRIMARY KEY NOT NULL,
	`seq` integer NOT NULL,
	`ts` real NOT NULL
);
--> statement-breakpoint
CREATE TABLE `people` (
	`name` text PRIMARY KEY NOT NULL,
	`first_seen` integer NOT NULL
);
--> statement-breakpoint
CREATE TABLE `read_markers` (
	`user` text NOT NULL,
	`conversation` text NOT NULL,
	`seq` integer NOT NULL,
	PRIMARY KEY(`user`, `conversation`)
);
--> statement-breakpoint
PRAGMA foreign_keys=OFF;--> statement-breakpoint
CREATE TABLE `__new_messages` (
	`n` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`id` text NOT NULL,
	`room` text NOT NULL,
	`seq` integer NOT NULL,
	`sender` text NOT NULL,
	`text` text NOT NULL,
	`ts` real NOT NULL,
	`cid` text,
	`via` text,
	`recipient` text
);
--> statement-breakpoint
-- Until now seq numbered all rooms together; it becomes each room's own count, 1, 2, 3… in the same
-- order, and the old number stays as n, the order of commit.
INSERT INTO `__new_messages`("n", "id", "room", "seq", "sender", "text", "ts") SELECT "seq", "id", "room", ROW_NUMBER() OVER (PARTITION BY "room" ORDER BY "seq"), "sender", "text", "ts" FROM `messages`;--> statement-breakpoint
INSERT INTO `conversations`("key", "seq", "ts") SELECT "room", count(*), max("ts") FROM `messages` GROUP BY "room";--> statement-breakpoint
DROP TABLE `messages`;--> statement-breakpoint
ALTER TABLE `__new_messages` RENAME TO `messages`;--> statement-breakpoint
PRAGMA foreign_keys=ON;--> statement-breakpoint
CREATE UNIQUE INDEX `messages_id_unique` ON `messages` (`id`);--> statement-breakpoint
CREATE UNIQUE INDEX `messages_room_seq` ON `messages` (`room`,`seq`);--> statement-breakpoint
CREATE UNIQUE INDEX `messages_room_sender_cid` ON `messages` (`room`,`sender`,`cid`) WHERE "messages"."cid" IS NOT NULL;--> statement-breakpoint
CREATE INDEX `messages_recipient` ON `messages` (`recipient`,`room`) WHERE "messages"."recipient" IS NOT NULL;--> statement-breakpoint
-- Every stored message moves its conversation's newest seq and time, in the same statement.
CREATE TRIGGER `messages_conversation` AFTER INSERT ON `messages` BEGIN INSERT INTO `conversations` (`key`, `seq`, `ts`) VALUES (NEW.`room`, NEW.`seq`, NEW.`ts`) ON CONFLICT (`key`) DO UPDATE SET `seq` = max(`seq`, excluded.`seq`), `ts` = max(`ts`, excluded.`ts`); END;
