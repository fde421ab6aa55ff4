// A Bloom filter of names: "certainly not among them" or "perhaps". The transcript of a file keeps the
// people who may have a read marker or a whisper stored, so a welcome for anyone else reads nothing.

/** Bits in the filter: 512 KiB, whatever the number of names. */
const BITS = 1 << 22;
/** Bits set per name. */
const HASHES = 5;

/**
 * Names added are always found again; a name never added is found by mistake with a chance of about
 * 1 in 50,000 with 100,000 names in it, and 1 in 5 with a million (each mistake costs one read).
 */
export class NameFilter {
  readonly #bits = new Uint32Array(BITS / 32);

  add(name: string): void {
    const [h1, h2] = hashes(name);
    for (let i = 0; i < HASHES; i++) {
      const bit = (h1 + Math.imul(i, h2)) & (BITS - 1);
      this.#bits[bit >>> 5] = (this.#bits[bit >>> 5] as number) | (1 << (bit & 31));
    }
  }

  /** False only for a name never added. */
  mayHold(name: string): boolean {
    const [h1, h2] = hashes(name);
    for (let i = 0; i < HASHES; i++) {
      const bit = (h1 + Math.imul(i, h2)) & (BITS - 1);
      if (((this.#bits[bit >>> 5] as number) & (1 << (bit & 31))) === 0) return false;
    }
    return true;
  }
}

/** Two 32-bit hashes of the name's UTF-16 units: FNV-1a, and its murmur3 finish made odd. */
function hashes(name: string): [number, number] {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193);
  let g = h ^ 0x9e3779b9;
  g = Math.imul(g ^ (g >>> 16), 0x85ebca6b);
  g = Math.imul(g ^ (g >>> 13), 0xc2b2ae35);
  g ^= g >>> 16;
  return [h >>> 0, (g | 1) >>> 0];
}
