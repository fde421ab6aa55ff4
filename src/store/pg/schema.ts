// The PostgreSQL schema (Drizzle): the same tables as the libSQL one (../schema.ts). drizzle-kit
// generates the migrations in drizzle-pg/ from this file (drizzle.pg.config.ts).
import { sql } from 'drizzle-orm';
import {
  bigint,
  bigserial,
  doublePrecision,
  index,
  integer,
  pgTable,
  primaryKey,
  serial,
  text,
  uniqueIndex,
} from 'drizzle-orm/pg-core';

/** The transcript: `seq` numbers each conversation 1, 2, 3… without gaps (see conversations). */
export const messages = pgTable(
  'messages',
  {
    /** The order of commit across all conversations. */
    n: bigserial('n', { mode: 'number' }).primaryKey(),
    id: text('id').notNull().unique(),
    room: text('room').notNull(),
    seq: integer('seq').notNull(),
    sender: text('sender').notNull(),
    text: text('text').notNull(),
    ts: doublePrecision('ts').notNull(),
    cid: text('cid'),
    via: text('via'),
    recipient: text('recipient'),
    deleted: doublePrecision('deleted'),
  },
  (t) => [
    uniqueIndex('messages_room_seq').on(t.room, t.seq),
    uniqueIndex('messages_room_sender_cid').on(t.room, t.sender, t.cid).where(sql`${t.cid} IS NOT NULL`),
    index('messages_recipient').on(t.recipient, t.room).where(sql`${t.recipient} IS NOT NULL`),
  ],
);

/**
 * Each conversation's counter: the newest seq and its time. An append locks the rows of its
 * conversations, so appends to one conversation commit one after another, in seq order, whichever
 * node makes them.
 */
export const conversations = pgTable('conversations', {
  key: text('key').primaryKey(),
  seq: integer('seq').notNull(),
  ts: doublePrecision('ts').notNull(),
});

/** How far each user has read each conversation; it only moves forward. */
export const readMarkers = pgTable(
  'read_markers',
  {
    user: text('user').notNull(),
    conversation: text('conversation').notNull(),
    seq: integer('seq').notNull(),
  },
  (t) => [primaryKey({ columns: [t.user, t.conversation] })],
);

/** Every name that has been in a room. */
export const people = pgTable('people', {
  name: text('name').primaryKey(),
  firstSeen: bigint('first_seen', { mode: 'number' }).notNull(),
});

/** People who have signed in, keyed by their provider's issuer and subject. */
export const users = pgTable(
  'users',
  {
    id: serial('id').primaryKey(),
    issuer: text('issuer').notNull(),
    subject: text('subject').notNull(),
    name: text('name').notNull(),
    lastLoginAt: bigint('last_login_at', { mode: 'number' }).notNull(),
  },
  (t) => [uniqueIndex('users_issuer_subject').on(t.issuer, t.subject)],
);

/** Browser sessions; only the token's SHA-256 is stored. */
export const sessions = pgTable(
  'sessions',
  {
    tokenHash: text('token_hash').primaryKey(),
    userId: integer('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    idToken: text('id_token'),
    createdAt: bigint('created_at', { mode: 'number' }).notNull(),
    lastSeenAt: bigint('last_seen_at', { mode: 'number' }).notNull(),
    expiresAt: bigint('expires_at', { mode: 'number' }).notNull(),
  },
  (t) => [index('sessions_user').on(t.userId), index('sessions_expires').on(t.expiresAt)],
);

/** OpenSSH public keys that prove a console's name. */
export const consoleKeys = pgTable(
  'console_keys',
  {
    fingerprint: text('fingerprint').primaryKey(),
    user: text('user').notNull(),
    algorithm: text('algorithm').notNull(),
    publicKey: text('public_key').notNull(),
    label: text('label').notNull(),
    createdAt: bigint('created_at', { mode: 'number' }).notNull(),
    createdBy: text('created_by').notNull(),
  },
  (t) => [index('console_keys_user').on(t.user)],
);

/** One row whose revision moves with every change to console_keys (a trigger), for every node to notice. */
export const keyChanges = pgTable('key_changes', {
  id: integer('id').primaryKey(),
  revision: bigint('revision', { mode: 'number' }).notNull(),
});

/** Bans and mutes, per room and user. */
export const restrictions = pgTable(
  'restrictions',
  {
    kind: text('kind').notNull(),
    room: text('room').notNull(),
    user: text('user').notNull(),
    until: doublePrecision('until'),
    by: text('by').notNull(),
    at: doublePrecision('at').notNull(),
    reason: text('reason'),
  },
  (t) => [primaryKey({ columns: [t.kind, t.room, t.user] })],
);

/** Every admin action and key change, oldest first. */
export const audit = pgTable('audit', {
  n: bigserial('n', { mode: 'number' }).primaryKey(),
  ts: doublePrecision('ts').notNull(),
  actor: text('actor').notNull(),
  via: text('via').notNull(),
  action: text('action').notNull(),
  room: text('room'),
  user: text('user'),
  message: text('message'),
  fingerprint: text('fingerprint'),
  until: doublePrecision('until'),
  reason: text('reason'),
});
