// Bans and mutes in force, per room and user, kept in memory for the Hub's checks; the store holds them
// across restarts.

/** A ban keeps a user out of a room; a mute keeps their messages out of it. */
export type RestrictionKind = 'ban' | 'mute';

/** One ban or mute. */
export interface Restriction {
  kind: RestrictionKind;
  room: string;
  user: string;
  /** When it ends (float seconds since the epoch); absent: until lifted. */
  until?: number | undefined;
  /** The admin who set it. */
  by: string;
  /** When it was set (float seconds). */
  at: number;
  reason?: string | undefined;
}

const keyOf = (kind: RestrictionKind, room: string, user: string): string =>
  `${kind}\u0001${room}\u0001${user}`;

/** The bans and mutes in force; one that has ended is forgotten when next asked about. */
export class Restrictions {
  readonly #all = new Map<string, Restriction>();

  constructor(initial: Iterable<Restriction> = []) {
    for (const r of initial) this.set(r);
  }

  /** Hold exactly `all`, in place of what was held. */
  replace(all: Iterable<Restriction>): void {
    this.#all.clear();
    for (const r of all) this.set(r);
  }

  /** Set (or replace) a ban or mute. */
  set(restriction: Restriction): void {
    this.#all.set(keyOf(restriction.kind, restriction.room, restriction.user), restriction);
  }

  /** Lift one; whether there was one in force. */
  lift(kind: RestrictionKind, room: string, user: string): boolean {
    const had = this.find(kind, room, user) !== undefined;
    this.#all.delete(keyOf(kind, room, user));
    return had;
  }

  /** The ban or mute of `user` in `room` in force now, if any. */
  find(kind: RestrictionKind, room: string, user: string, now = Date.now() / 1000): Restriction | undefined {
    if (this.#all.size === 0) return undefined;
    const key = keyOf(kind, room, user);
    const found = this.#all.get(key);
    if (found?.until !== undefined && found.until <= now) {
      this.#all.delete(key);
      return undefined;
    }
    return found;
  }
}

/** What a banned user is told: the room, and until when if the ban ends. */
export function bannedMessage(ban: Restriction): string {
  const until = ban.until === undefined ? '' : ` until ${new Date(ban.until * 1000).toISOString()}`;
  return `you are banned from ${ban.room}${until}`;
}
