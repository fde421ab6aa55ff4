// The database schema (Drizzle). drizzle-kit generates the migrations in drizzle/ from this file.
import { sql } from 'drizzle-orm';
import { index, integer, primaryKey, real, sqliteTable, text, uniqueIndex } from 'drizzle-orm/sqlite-core';

/**
 * The transcript: every message ever accepted. A conversation is a room (its name) or the whisper
 * conversation of two people (a key no room name can take, see conversationKey); `seq` numbers each
 * conversation's messages 1, 2, 3… without gaps, so a client can see that it missed one.
 */
export const messages = sqliteTable(
  'messages',
  {
    /** The order of commit across all conversations; AUTOINCREMENT so a number is never reused. */
    n: integer('n').primaryKey({ autoIncrement: true }),
    /** Server-assigned message id; appending the same id twice stores it once. */
    id: text('id').notNull().unique(),
    /** The conversation: a room name, or a whisper pair's key. */
    room: text('room').notNull(),
    /** Place in the conversation. */
    seq: integer('seq').notNull(),
    sender: text('sender').notNull(),
    text: text('text').notNull(),
    /** Server time the message was stamped, in float seconds since the epoch. */
    ts: real('ts').notNull(),
    /** The sender's client id: a second message with it from the same sender is not stored again. */
    cid: text('cid'),
    /** "browser" or "console"; unknown for messages stored before it was recorded. */
    via: text('via'),
    /** A whisper's recipient. */
    recipient: text('recipient'),
    /** When an admin deleted it (float seconds); its text is gone, its seq stays as a tombstone. */
    deleted: real('deleted'),
  },
  (t) => [
    // Serves backscroll, resume and history pages, and keeps seq unique within a conversation.
    uniqueIndex('messages_room_seq').on(t.room, t.seq),
    uniqueIndex('messages_room_sender_cid').on(t.room, t.sender, t.cid).where(sql`${t.cid} IS NOT NULL`),
    index('messages_recipient').on(t.recipient, t.room).where(sql`${t.recipient} IS NOT NULL`),
  ],
);

/** Each conversation's newest message: where the next seq starts, and what a room list shows. */
export const conversations = sqliteTable('conversations', {
  key: text('key').primaryKey(),
  seq: integer('seq').notNull(),
  ts: real('ts').notNull(),
});

/** How far each user has read each conversation (rooms and whispers); it only moves forward. */
export const readMarkers = sqliteTable(
  'read_markers',
  {
    user: text('user').notNull(),
    conversation: text('conversation').notNull(),
    seq: integer('seq').notNull(),
  },
  (t) => [primaryKey({ columns: [t.user, t.conversation] })],
);

/** Every name that has been in a room, so a whisper can tell a person from a typo. */
export const people = sqliteTable('people', {
  name: text('name').primaryKey(),
  firstSeen: integer('first_seen').notNull(),
});

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

/** OpenSSH public keys that prove a console's name (SHA256 fingerprints, as `ssh-keygen -l` prints them). */
export const consoleKeys = sqliteTable(
  'console_keys',
  {
    fingerprint: text('fingerprint').primaryKey(),
    /** The name the key proves. */
    user: text('user').notNull(),
    algorithm: text('algorithm').notNull(),
    /** "algorithm base64", without the comment. */
    publicKey: text('public_key').notNull(),
    label: text('label').notNull(),
    createdAt: integer('created_at').notNull(),
    /** Who enrolled it: a signed-in name, or the host account that ran `runspec-room keys add`. */
    createdBy: text('created_by').notNull(),
  },
  (t) => [index('console_keys_user').on(t.user)],
);

/**
 * One row whose revision moves with every change to console_keys (triggers), so a running server
 * notices a key removed by another process with one cheap read a second.
 */
export const keyChanges = sqliteTable('key_changes', {
  id: integer('id').primaryKey(),
  revision: integer('revision').notNull(),
});

/** Bans (no joining the room) and mutes (no messages to it), per room and user, until a time or lifted. */
export const restrictions = sqliteTable(
  'restrictions',
  {
    /** "ban" or "mute". */
    kind: text('kind').notNull(),
    room: text('room').notNull(),
    user: text('user').notNull(),
    /** When it ends (float seconds); null: until lifted. */
    until: real('until'),
    by: text('by').notNull(),
    at: real('at').notNull(),
    reason: text('reason'),
  },
  (t) => [primaryKey({ columns: [t.kind, t.room, t.user] })],
);

/** Every admin action and key change, oldest first. */
export const audit = sqliteTable('audit', {
  n: integer('n').primaryKey({ autoIncrement: true }),
  ts: real('ts').notNull(),
  /** Who did it: an admin's name, or `host:ACCOUNT` for the command line. */
  actor: text('actor').notNull(),
  /** Where from: "browser", "console" or "host". */
  via: text('via').notNull(),
  action: text('action').notNull(),
  room: text('room'),
  /** The person acted on. */
  user: text('user'),
  /** The message deleted. */
  message: text('message'),
  fingerprint: text('fingerprint'),
  until: real('until'),
  reason: text('reason'),
});
