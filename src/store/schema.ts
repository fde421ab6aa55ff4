// The database schema (Drizzle). drizzle-kit generates the migrations in drizzle/ from this file.
import { index, integer, real, sqliteTable, text } from 'drizzle-orm/sqlite-core';

/** The transcript: every message ever accepted, ordered by `seq`. */
export const messages = sqliteTable(
  'messages',
  {
    /** Position in the transcript; AUTOINCREMENT so a number is never reused. */
    seq: integer('seq').primaryKey({ autoIncrement: true }),
    /** Server-assigned message id; appending the same id twice stores it once. */
    id: text('id').notNull().unique(),
    room: text('room').notNull(),
    sender: text('sender').notNull(),
    text: text('text').notNull(),
    /** Server time the message was stamped, in float seconds since the epoch. */
    ts: real('ts').notNull(),
  },
  // Serves both backscroll (newest N of a room) and resume (a room's messages after a seq).
  (t) => [index('messages_room_seq').on(t.room, t.seq)],
);
