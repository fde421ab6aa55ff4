// Values grouped by key where most keys hold one value: each connected user's connections, say. A lone
// value is kept as it is and a Set is made only for a second one, since an empty Set with its table
// costs about 200 bytes, as much as the rest of an idle connection's Hub state.

/** Values per key, most keys holding one. Values must not be Sets themselves. */
export class Grouped<K, V extends object> {
  readonly #groups = new Map<K, V | Set<V>>();

  /** Add `value` under `key`; true when the key had none before. */
  add(key: K, value: V): boolean {
    const found = this.#groups.get(key);
    if (found === undefined) {
      this.#groups.set(key, value);
      return true;
    }
    if (found instanceof Set) found.add(value);
    else if (found !== value) this.#groups.set(key, new Set([found, value]));
    return false;
  }

  /** Remove `value` from under `key`; true when it was the key's last one. */
  delete(key: K, value: V): boolean {
    const found = this.#groups.get(key);
    if (found === undefined) return false;
    if (found instanceof Set) {
      found.delete(value);
      if (found.size > 1) return false;
      const [last] = found;
      if (last === undefined) this.#groups.delete(key);
      else this.#groups.set(key, last);
      return last === undefined;
    }
    if (found !== value) return false;
    this.#groups.delete(key);
    return true;
  }

  has(key: K): boolean {
    return this.#groups.has(key);
  }

  /** The values under `key`, in the order they were added (none: empty). */
  get(key: K): Iterable<V> {
    const found = this.#groups.get(key);
    if (found === undefined) return [];
    return found instanceof Set ? found : [found];
  }
}

/**
 * A Map of few entries, most often one (the rooms a connection is in): the first entry is kept inline,
 * and a Map made only for a second. Once made, the Map stays.
 */
export class FewMap<K, V> {
  #one: { key: K; value: V } | undefined;
  #many: Map<K, V> | undefined;

  get size(): number {
    return this.#many ? this.#many.size : this.#one ? 1 : 0;
  }

  get(key: K): V | undefined {
    if (this.#many) return this.#many.get(key);
    return this.#one?.key === key ? this.#one.value : undefined;
  }

  has(key: K): boolean {
    return this.#many ? this.#many.has(key) : this.#one?.key === key;
  }

  set(key: K, value: V): this {
    if (this.#many) this.#many.set(key, value);
    else if (this.#one === undefined || this.#one.key === key) this.#one = { key, value };
    else {
      this.#many = new Map([
        [this.#one.key, this.#one.value],
        [key, value],
      ]);
      this.#one = undefined;
    }
    return this;
  }

  delete(key: K): boolean {
    if (this.#many) return this.#many.delete(key);
    if (this.#one?.key !== key) return false;
    this.#one = undefined;
    return true;
  }

  keys(): Iterable<K> {
    if (this.#many) return this.#many.keys();
    return this.#one ? [this.#one.key] : [];
  }

  values(): Iterable<V> {
    if (this.#many) return this.#many.values();
    return this.#one ? [this.#one.value] : [];
  }
}
