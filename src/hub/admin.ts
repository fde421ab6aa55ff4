// Admin actions: kick, ban and mute (and lifting them), deleting a message, revoking a console key.
// Only a proven name on the admin list may act; every action is audited before it takes effect.
import type { Log } from '../log.ts';
import { ErrorCode } from '../protocol/codes.ts';
import type { AdminFrame, ServerFrame } from '../protocol/frames.ts';
import type { Peer } from './peer.ts';
import type { Restriction, RestrictionKind, Restrictions } from './restrictions.ts';

/** One line of the audit trail. */
export interface AuditEntry {
  /** When (float seconds since the epoch). */
  ts: number;
  /** Who acted: an admin's name, or `host:ACCOUNT` for the command line. */
  actor: string;
  /** Where from: "browser", "console" or "host". */
  via: 'browser' | 'console' | 'host';
  action: string;
  room?: string | undefined;
  /** The person acted on. */
  user?: string | undefined;
  /** The message deleted. */
  message?: string | undefined;
  fingerprint?: string | undefined;
  until?: number | undefined;
  reason?: string | undefined;
}

/** What admin actions need of the store: each write lands together with its audit line. */
export interface AdminStore {
  /** The bans and mutes in force; those that have ended are removed. */
  restrictions(now?: number): Promise<Restriction[]>;
  /** Set (or replace) a ban or mute. */
  restrict(restriction: Restriction, entry: AuditEntry): Promise<void>;
  /** Lift a ban or mute; whether one was stored. */
  lift(kind: RestrictionKind, room: string, user: string, entry: AuditEntry): Promise<boolean>;
  /** Empty a room message's text and mark it deleted at `at`; its seq and whether it was deleted before, or undefined when the room has no such message. */
  tombstone(
    room: string,
    id: string,
    at: number,
    entry: AuditEntry,
  ): Promise<{ seq: number; already: boolean } | undefined>;
  /** Record an action that changes nothing stored (a kick). */
  audit(entry: AuditEntry): Promise<void>;
}

/** Removes a console key and closes its connections; false when no such key is enrolled. */
export type KeyRevoker = (fingerprint: string, entry: AuditEntry) => Promise<boolean>;

/** A ban or mute set, or one lifted. */
export type RestrictionChange =
  | { set: Restriction }
  | { lift: { kind: RestrictionKind; room: string; user: string } };

/** What admin actions do to the rooms: the Hub's side of them. */
export interface AdminHub {
  reply(peer: Peer, frame: ServerFrame): void;
  refuse(peer: Peer, code: ErrorCode, message: string, ref?: string): void;
  /** Take every connection of `user` out of `room`, telling each with `frame`; how many there were. */
  expel(room: string, user: string, frame: ServerFrame & { type: 'kicked' }): number | Promise<number>;
  /** A ban or mute took effect here (the other nodes of a cluster are told). */
  restricted?(change: RestrictionChange): void;
  /** Tell a room's members that a message was deleted. */
  announceDeleted(room: string, id: string, seq: number): void;
}

/** Admin settings: who admins are, and where actions are stored. */
export interface AdminOptions {
  /** Names that may act once proven (signed in, or by a console key). */
  admins?: ReadonlySet<string>;
  store?: AdminStore | undefined;
  revoke?: KeyRevoker | undefined;
}

/** Checks and carries out admin frames. */
export class Admin {
  readonly #admins: ReadonlySet<string>;
  readonly #store: AdminStore | undefined;
  readonly #revoke: KeyRevoker | undefined;
  readonly #restrictions: Restrictions;
  readonly #log: Log;

  constructor(options: AdminOptions, restrictions: Restrictions, log: Log) {
    this.#admins = options.admins ?? new Set();
    this.#store = options.store;
    this.#revoke = options.revoke;
    this.#restrictions = restrictions;
    this.#log = log;
  }

  /** Whether a connection may act as an admin: a proven name on the list, never a claimed one. */
  isAdmin(peer: Peer): boolean {
    return peer.authenticated === true && this.#admins.has(peer.user);
  }

  /** Carry out an admin frame, answering its ref with `ack` or an error. */
  async handle(hub: AdminHub, peer: Peer, frame: AdminFrame): Promise<void> {
    const ref = frame.ref;
    if (!this.isAdmin(peer)) {
      this.#log.warn('admin action refused: not an admin', { user: peer.user, action: frame.type });
      hub.refuse(peer, ErrorCode.Forbidden, `only an admin may ${frame.type}`, ref);
      return;
    }
    const store = this.#store;
    if (!store) {
      hub.refuse(peer, ErrorCode.StoreUnavailable, 'admin actions are not available on this server', ref);
      return;
    }
    const now = Date.now() / 1000;
    const entry: AuditEntry = { ts: now, actor: peer.user, via: peer.via, action: frame.type };
    const done = (): void => {
      this.#log.info('admin action', { ...entry, ts: undefined });
      if (ref !== undefined) hub.reply(peer, { type: 'ack', ref });
    };
    const failed = (error: unknown): void => {
      this.#log.error('admin action not stored', { action: frame.type, error: String(error) });
      hub.refuse(
        peer,
        ErrorCode.StoreUnavailable,
        `the ${frame.type} could not be stored and was not done`,
        ref,
      );
    };
    try {
      switch (frame.type) {
        case 'kick': {
          Object.assign(entry, { room: frame.room, user: frame.user, reason: frame.reason });
          if (!(await hub.expel(frame.room, frame.user, kicked(frame.room, peer.user, frame.reason)))) {
            hub.refuse(peer, ErrorCode.NotFound, `${frame.user} is not in ${frame.room}`, ref);
            return;
          }
          await store.audit(entry);
          done();
          return;
        }
        case 'ban':
        case 'mute': {
          Object.assign(entry, {
            room: frame.room,
            user: frame.user,
            until: frame.until,
            reason: frame.reason,
          });
          if (frame.until !== undefined && frame.until <= now) {
            hub.refuse(peer, ErrorCode.BadFrame, 'until must be in the future', ref);
            return;
          }
          const restriction: Restriction = {
            kind: frame.type,
            room: frame.room,
            user: frame.user,
            until: frame.until,
            by: peer.user,
            at: now,
            reason: frame.reason,
          };
          await store.restrict(restriction, entry);
          this.#restrictions.set(restriction);
          hub.restricted?.({ set: restriction });
          if (frame.type === 'ban') await hub.expel(frame.room, frame.user, bannedFrame(restriction));
          done();
          return;
        }
        case 'unban':
        case 'unmute': {
          const kind = frame.type === 'unban' ? 'ban' : 'mute';
          Object.assign(entry, { room: frame.room, user: frame.user });
          const had = this.#restrictions.find(kind, frame.room, frame.user) !== undefined;
          const stored = await store.lift(kind, frame.room, frame.user, entry);
          this.#restrictions.lift(kind, frame.room, frame.user);
          hub.restricted?.({ lift: { kind, room: frame.room, user: frame.user } });
          if (!had && !stored) {
            hub.refuse(peer, ErrorCode.NotFound, `${frame.user} is not ${kind}ned in ${frame.room}`, ref);
            return;
          }
          done();
          return;
        }
        case 'delete': {
          Object.assign(entry, { room: frame.room, message: frame.id });
          const found = await store.tombstone(frame.room, frame.id, now, entry);
          if (!found) {
            hub.refuse(peer, ErrorCode.NotFound, `${frame.room} has no message ${frame.id}`, ref);
            return;
          }
          if (!found.already) hub.announceDeleted(frame.room, frame.id, found.seq);
          done();
          return;
        }
        case 'revoke': {
          entry.fingerprint = frame.fingerprint;
          if (!this.#revoke || !(await this.#revoke(frame.fingerprint, entry))) {
            hub.refuse(peer, ErrorCode.NotFound, `no console key ${frame.fingerprint} is enrolled`, ref);
            return;
          }
          done();
          return;
        }
      }
    } catch (error) {
      failed(error);
    }
  }
}

function kicked(room: string, by: string, reason: string | undefined): ServerFrame & { type: 'kicked' } {
  return { type: 'kicked', room, by, banned: false, ...(reason === undefined ? {} : { reason }) };
}

/** What the members a ban takes out of its room are told. */
export function bannedFrame(ban: Restriction): ServerFrame & { type: 'kicked' } {
  return {
    ...kicked(ban.room, ban.by, ban.reason),
    banned: true,
    ...(ban.until === undefined ? {} : { until: ban.until }),
  };
}
