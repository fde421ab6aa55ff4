// The database schema (Drizzle). drizzle-kit generates the migrations in drizzle/ from this file.
import { index, integer, real, sqliteTable, text, uniqueIndex } from 'drizzle-orm/sqlite-core';

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

/** People who have signed in, keyed by their provider's issuer and subject (never by email). */
export const users = sqliteTable(
  'users',
  {
    id: integer('id').primaryKey({ autoIncrement: true }),
    issuer: text('issuer').notNull(),
    subject: text('subject').notNull(),
    /** The name shown in rooms, refreshed at each sign-in. */
    name: text('name').notNull(),
    lastLoginAt: integer('last_login_at').notNull(),
  },
  (t) => [uniqueIndex('users_issuer_subject').on(t.issuer, t.subject)],
);

/** Browser sessions. The cookie carries a random token; only its SHA-256 is stored here. */
export const sessions = sqliteTable(
  'sessions',
  {
    tokenHash: text('token_hash').primaryKey(),
    userId: integer('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    /** Kept for the provider's logout (id_token_hint). */
    idToken: text('id_token'),
    createdAt: integer('created_at').notNull(),
    lastSeenAt: integer('last_seen_at').notNull(),
    /** Absolute end, whatever the use. Seconds since the epoch, like the other times here. */
    expiresAt: integer('expires_at').notNull(),
  },
  (t) => [index('sessions_user').on(t.userId), index('sessions_expires').on(t.expiresAt)],
);
