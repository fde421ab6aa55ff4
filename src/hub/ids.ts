// Message ids: 32 lowercase hex digits, as the Python server's uuid4().hex, but time-ordered (UUIDv7).

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));
/** Random bytes are drawn in blocks: one call to the CSPRNG per 409 ids, not one per id. */
const pool = new Uint8Array(4096);
let used = pool.length;

/**
 * A new message id: a UUIDv7 (RFC 9562) in hex, without dashes. The first 48 bits are the Unix time
 * in milliseconds, so ids made later sort later and the transcript's unique index on `id` grows at
 * its end (a batch dirties a page or two of it, not one random page per message); 74 bits are random.
 */
export function newId(nowMs: number = Date.now()): string {
  if (used + 10 > pool.length) {
    crypto.getRandomValues(pool);
    used = 0;
  }
  const r = pool.subarray(used, used + 10);
  used += 10;
  const ms = Math.max(0, Math.floor(nowMs));
  const time = ms.toString(16).padStart(12, '0').slice(-12);
  // version 7 in the high nibble of byte 6; variant 0b10 in the top bits of byte 8
  return (
    time +
    HEX[0x70 | ((r[0] as number) & 0x0f)] +
    HEX[r[1] as number] +
    HEX[0x80 | ((r[2] as number) & 0x3f)] +
    HEX[r[3] as number] +
    HEX[r[4] as number] +
    HEX[r[5] as number] +
    HEX[r[6] as number] +
    HEX[r[7] as number] +
    HEX[r[8] as number] +
    HEX[r[9] as number]
  );
}
