CREATE TABLE `audit` (
	`n` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`ts` real NOT NULL,
	`actor` text NOT NULL,
	`via` text NOT NULL,
	`action` text NOT NULL,
	`room` text,
	`user` text,
	`message` text,
	`fingerprint` text,
	`until` real,
	`reason` text
);
--> statement-breakpoint
CREATE TABLE `console_keys` (
	`fingerprint` text PRIMARY KEY NOT NULL,
	`user` text NOT NULL,
	`algorithm` text NOT NULL,
	`public_key` text NOT NULL,
	`label` text NOT NULL,
	`created_at` integer NOT NULL,
	`created_by` text NOT NULL
);
--> statement-breakpoint
CREATE INDEX `console_keys_user` ON `console_keys` (`user`);--> statement-breakpoint
CREATE TABLE `key_changes` (
	`id` integer PRIMARY KEY NOT NULL,
	`revision` integer NOT NULL
);
--> statement-breakpoint
CREATE TABLE `restrictions` (
	`kind` text NOT NULL,
	`room` text NOT NULL,
	`user` text NOT NULL,
	`until` real,
	`by` text NOT NULL,
	`at` real NOT NULL,
	`reason` text,
	PRIMARY KEY(`kind`, `room`, `user`)
);
--> statement-breakpoint
ALTER TABLE `messages` ADD `deleted` real;--> statement-breakpoint
INSERT INTO `key_changes` (`id`, `revision`) VALUES (1, 0);--> statement-breakpoint
-- Any change to the keys moves the revision, in the same statement, whichever process made it.
CREATE TRIGGER `console_keys_added` AFTER INSERT ON `console_keys` BEGIN UPDATE `key_changes` SET `revision` = `revision` + 1 WHERE `id` = 1; END;--> statement-breakpoint
CREATE TRIGGER `console_keys_removed` AFTER DELETE ON `console_keys` BEGIN UPDATE `key_changes` SET `revision` = `revision` + 1 WHERE `id` = 1; END;--> statement-breakpoint
CREATE TRIGGER `console_keys_changed` AFTER UPDATE ON `console_keys` BEGIN UPDATE `key_changes` SET `revision` = `revision` + 1 WHERE `id` = 1; END;
