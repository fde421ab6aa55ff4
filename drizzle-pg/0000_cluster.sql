CREATE TABLE "audit" (
	"n" bigserial PRIMARY KEY NOT NULL,
	"ts" double precision NOT NULL,
	"actor" text NOT NULL,
	"via" text NOT NULL,
	"action" text NOT NULL,
	"room" text,
	"user" text,
	"message" text,
	"fingerprint" text,
	"until" double precision,
	"reason" text
);
--> statement-breakpoint
CREATE TABLE "console_keys" (
	"fingerprint" text PRIMARY KEY NOT NULL,
	"user" text NOT NULL,
	"algorithm" text NOT NULL,
	"public_key" text NOT NULL,
	"label" text NOT NULL,
	"created_at" bigint NOT NULL,
	"created_by" text NOT NULL
);
--> statement-breakpoint
CREATE TABLE "conversations" (
	"key" text PRIMARY KEY NOT NULL,
	"seq" integer NOT NULL,
	"ts" double precision NOT NULL
);
--> statement-breakpoint
CREATE TABLE "key_changes" (
	"id" integer PRIMARY KEY NOT NULL,
	"revision" bigint NOT NULL
);
--> statement-breakpoint
CREATE TABLE "messages" (
	"n" bigserial PRIMARY KEY NOT NULL,
	"id" text NOT NULL,
	"room" text NOT NULL,
	"seq" integer NOT NULL,
	"sender" text NOT NULL,
	"text" text NOT NULL,
	"ts" double precision NOT NULL,
	"cid" text,
	"via" text,
	"recipient" text,
	"deleted" double precision,
	CONSTRAINT "messages_id_unique" UNIQUE("id")
);
--> statement-breakpoint
CREATE TABLE "people" (
	"name" text PRIMARY KEY NOT NULL,
	"first_seen" bigint NOT NULL
);
--> statement-breakpoint
CREATE TABLE "read_markers" (
	"user" text NOT NULL,
	"conversation" text NOT NULL,
	"seq" integer NOT NULL,
	CONSTRAINT "read_markers_user_conversation_pk" PRIMARY KEY("user","conversation")
);
--> statement-breakpoint
CREATE TABLE "restrictions" (
	"kind" text NOT NULL,
	"room" text NOT NULL,
	"user" text NOT NULL,
	"until" double precision,
	"by" text NOT NULL,
	"at" double precision NOT NULL,
	"reason" text,
	CONSTRAINT "restrictions_kind_room_user_pk" PRIMARY KEY("kind","room","user")
);
--> statement-breakpoint
CREATE TABLE "sessions" (
	"token_hash" text PRIMARY KEY NOT NULL,
	"user_id" integer NOT NULL,
	"id_token" text,
	"created_at" bigint NOT NULL,
	"last_seen_at" bigint NOT NULL,
	"expires_at" bigint NOT NULL
);
--> statement-breakpoint
CREATE TABLE "users" (
	"id" serial PRIMARY KEY NOT NULL,
	"issuer" text NOT NULL,
	"subject" text NOT NULL,
	"name" text NOT NULL,
	"last_login_at" bigint NOT NULL
);
--> statement-breakpoint
ALTER TABLE "sessions" ADD CONSTRAINT "sessions_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "public"."users"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "console_keys_user" ON "console_keys" USING btree ("user");--> statement-breakpoint
CREATE UNIQUE INDEX "messages_room_seq" ON "messages" USING btree ("room","seq");--> statement-breakpoint
CREATE UNIQUE INDEX "messages_room_sender_cid" ON "messages" USING btree ("room","sender","cid") WHERE "messages"."cid" IS NOT NULL;--> statement-breakpoint
CREATE INDEX "messages_recipient" ON "messages" USING btree ("recipient","room") WHERE "messages"."recipient" IS NOT NULL;--> statement-breakpoint
CREATE INDEX "sessions_user" ON "sessions" USING btree ("user_id");--> statement-breakpoint
CREATE INDEX "sessions_expires" ON "sessions" USING btree ("expires_at");--> statement-breakpoint
CREATE UNIQUE INDEX "users_issuer_subject" ON "users" USING btree ("issuer","subject");--> statement-breakpoint
INSERT INTO "key_changes" ("id", "revision") VALUES (1, 0);--> statement-breakpoint
-- Any change to the keys moves the revision, in the same transaction, whichever node made it.
CREATE FUNCTION "console_keys_changed"() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN UPDATE "key_changes" SET "revision" = "revision" + 1 WHERE "id" = 1; RETURN NULL; END; $$;--> statement-breakpoint
CREATE TRIGGER "console_keys_changed" AFTER INSERT OR UPDATE OR DELETE ON "console_keys" FOR EACH STATEMENT EXECUTE FUNCTION "console_keys_changed"();
