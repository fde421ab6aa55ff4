-- Full-text search over room messages. The words of a message are read with the runspec_room text
-- search configuration: lower case, no stemming and no stop words (as the embedded store's FTS5
-- index), and without accents where the unaccent extension is available (PostgreSQL's contrib,
-- trusted since PostgreSQL 13, so the database's owner may create it); without it, accents count.
DO $$
BEGIN
  CREATE EXTENSION IF NOT EXISTS unaccent;
  CREATE TEXT SEARCH CONFIGURATION runspec_room (COPY = pg_catalog.simple);
  ALTER TEXT SEARCH CONFIGURATION runspec_room
    ALTER MAPPING FOR asciihword, asciiword, hword, hword_asciipart, hword_part, word WITH unaccent, simple;
EXCEPTION WHEN OTHERS THEN
  CREATE TEXT SEARCH CONFIGURATION runspec_room (COPY = pg_catalog.simple);
END
$$;--> statement-breakpoint
-- A GIN index on those words, partial like the FTS5 index: whispers and deleted messages are never in
-- it. The search query names the same expression and predicate, so the planner uses this index.
-- Hand-written: drizzle-kit generates neither text search configurations nor expression indexes.
CREATE INDEX IF NOT EXISTS "messages_search" ON "messages" USING gin (to_tsvector('runspec_room', "text")) WHERE "recipient" IS NULL AND "deleted" IS NULL;
