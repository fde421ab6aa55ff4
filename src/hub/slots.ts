// Bounds on work that costs the node more than a frame does (searches, exports): so many at once,
// and so many of one person's, counted over every door.

/** Why a slot was refused: the node's are all taken, or the person's own are. */
export type Refusal = 'server' | 'person';

/** Slots for one kind of work; a person's entry exists only while they hold one. */
export class Slots {
  readonly #perUser: number;
  #taken = 0;
  readonly #byUser = new Map<string, number>();

  constructor(perUser: number) {
    this.#perUser = perUser;
  }

  /**
   * A slot, if fewer than `atOnce` are taken and `user` (when named) holds fewer than their share:
   * the function that gives it back (once, however often it is called). Else why not.
   */
  take(atOnce: number, user: string | undefined): (() => void) | Refusal {
    if (this.#taken >= atOnce) return 'server';
    const held = user === undefined ? 0 : (this.#byUser.get(user) ?? 0);
    if (held >= this.#perUser) return 'person';
    this.#taken += 1;
    if (user !== undefined) this.#byUser.set(user, held + 1);
    let given = false;
    return () => {
      if (given) return;
      given = true;
      this.#taken -= 1;
      if (user === undefined) return;
      const left = (this.#byUser.get(user) ?? 1) - 1;
      if (left > 0) this.#byUser.set(user, left);
      else this.#byUser.delete(user);
    };
  }
}
