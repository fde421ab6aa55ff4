// Collections with a bound: the oldest entries go first (a Map or Set keeps insertion order).

/** Let the oldest entries of `entries` go until it holds at most `cap`. */
export function dropOldest(entries: Map<unknown, unknown> | Set<unknown>, cap: number): void {
  for (const key of entries.keys()) {
    if (entries.size <= cap) return;
    entries.delete(key);
  }
}
