// OpenSSH public keys as users paste them, and SSHSIG signatures (`ssh-keygen -Y sign`) checked against them, on Web Crypto alone.

/** An OpenSSH public key as a user pastes it. */
export interface SshPublicKey {
  algorithm: string; // one of SSH_KEY_ALGORITHMS
  blob: Uint8Array; // the decoded key blob
  text: string; // normalised "algorithm base64", without the comment
  comment: string; // printable, at most 256 characters; '' if none
  fingerprint: string; // as `ssh-keygen -l -E sha256` prints it: "SHA256:" + unpadded base64 of sha256(blob)
  bits: number; // 256 for ed25519, the curve's bits for ecdsa, the modulus's bits for rsa
}

/** The key types a console may enrol. */
export const SSH_KEY_ALGORITHMS: readonly string[] = Object.freeze([
  'ssh-ed25519',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
  'ssh-rsa',
]);

const MAX_INPUT_BYTES = 16 * 1024;
const MAX_COMMENT_CHARS = 256;
const RSA_MIN_BITS = 2048;
const RSA_MAX_BITS = 16384;
const SUPPORTED = 'use ssh-ed25519, ecdsa-sha2-nistp256/384/521 or ssh-rsa';
const ARMOR_BEGIN = '-----BEGIN SSH SIGNATURE-----';
const ARMOR_END = '-----END SSH SIGNATURE-----';
const SSHSIG_MAGIC = 'SSHSIG';
const SSHSIG_VERSION = 1;
const SSHSIG_HASHES: ReadonlyMap<string, 'SHA-256' | 'SHA-512'> = new Map([
  ['sha256', 'SHA-256'],
  ['sha512', 'SHA-512'],
]);

interface Curve {
  readonly name: string;
  readonly webCurve: 'P-256' | 'P-384' | 'P-521';
  readonly hash: 'SHA-256' | 'SHA-384' | 'SHA-512';
  readonly size: number;
  readonly bits: number;
}

const CURVES: ReadonlyMap<string, Curve> = new Map([
  ['ecdsa-sha2-nistp256', { name: 'nistp256', webCurve: 'P-256', hash: 'SHA-256', size: 32, bits: 256 }],
  ['ecdsa-sha2-nistp384', { name: 'nistp384', webCurve: 'P-384', hash: 'SHA-384', size: 48, bits: 384 }],
  ['ecdsa-sha2-nistp521', { name: 'nistp521', webCurve: 'P-521', hash: 'SHA-512', size: 66, bits: 521 }],
]);

type KeyParts =
  | { kind: 'ed25519'; key: Uint8Array<ArrayBuffer> }
  | { kind: 'ecdsa'; curve: Curve; point: Uint8Array<ArrayBuffer> }
  | { kind: 'rsa'; e: Uint8Array<ArrayBuffer>; n: Uint8Array<ArrayBuffer> };

/** A refusal of malformed input; caught at the two exported functions and returned as a message. */
class Refusal extends Error {}

const encoder = new TextEncoder();
const MAGIC_BYTES = encoder.encode(SSHSIG_MAGIC);

/** Reads the SSH wire encoding (RFC 4251 §5): uint32, string, mpint. */
class WireReader {
  readonly #bytes: Uint8Array<ArrayBuffer>;
  readonly #what: string;
  #pos = 0;

  constructor(bytes: Uint8Array<ArrayBuffer>, what: string) {
    this.#bytes = bytes;
    this.#what = what;
  }

  take(length: number): Uint8Array<ArrayBuffer> {
    if (length > this.#bytes.length - this.#pos) throw new Refusal(`${this.#what} is cut short`);
    const out = this.#bytes.subarray(this.#pos, this.#pos + length);
    this.#pos += length;
    return out;
  }

  uint32(): number {
    const b = this.take(4);
    return (((b[0] ?? 0) << 24) | ((b[1] ?? 0) << 16) | ((b[2] ?? 0) << 8) | (b[3] ?? 0)) >>> 0;
  }

  string(): Uint8Array<ArrayBuffer> {
    return this.take(this.uint32());
  }

  text(): string {
    return latin1(this.string());
  }

  /** A non-negative mpint's magnitude, without leading zero bytes. */
  unsignedMpint(): Uint8Array<ArrayBuffer> {
    const raw = this.string();
    if (raw.length > 0 && ((raw[0] ?? 0) & 0x80) !== 0) {
      throw new Refusal(`${this.#what} holds a negative number`);
    }
    let start = 0;
    while (start < raw.length && raw[start] === 0) start++;
    return raw.subarray(start);
  }

  end(): void {
    if (this.#pos !== this.#bytes.length) throw new Refusal(`${this.#what} has bytes after its end`);
  }
}

function latin1(bytes: Uint8Array): string {
  let out = '';
  for (const b of bytes) out += String.fromCharCode(b);
  return out;
}

/** Something taken from the input, fit to quote in a one-line message. */
function shown(text: string): string {
  const printable = text.replace(/[^\x20-\x7e]/gu, '?');
  return printable.length > 60 ? `${printable.slice(0, 60)}…` : printable;
}

function toBase64(bytes: Uint8Array): string {
  let binary = '';
  for (let i = 0; i < bytes.length; i += 0x4000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x4000));
  }
  return btoa(binary);
}

function toBase64Url(bytes: Uint8Array): string {
  return toBase64(bytes).replaceAll('+', '-').replaceAll('/', '_').replace(/=+$/u, '');
}

/** Padded standard base64 only: atob alone would also take unpadded text and embedded whitespace. */
function fromBase64(text: string): Uint8Array<ArrayBuffer> | undefined {
  if (text.length === 0 || text.length % 4 !== 0 || !/^[A-Za-z0-9+/]+={0,2}$/u.test(text)) return undefined;
  try {
    return Uint8Array.from(atob(text), (ch) => ch.charCodeAt(0));
  } catch {
    return undefined;
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= (a[i] ?? 0) ^ (b[i] ?? 0);
  return diff === 0;
}

function bitLength(magnitude: Uint8Array): number {
  const top = magnitude[0] ?? 0;
  return top === 0 ? 0 : (magnitude.length - 1) * 8 + (32 - Math.clz32(top));
}

function concat(parts: readonly Uint8Array[]): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(parts.reduce((sum, p) => sum + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function wireString(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(4 + bytes.length);
  new DataView(out.buffer).setUint32(0, bytes.length);
  out.set(bytes, 4);
  return out;
}

function unsupportedType(type: string): string {
  const fido = type.startsWith('sk-') ? ' (security-key (FIDO) keys are not supported)' : '';
  return `unsupported key type ${shown(type)}${fido}; ${SUPPORTED}`;
}

/** Over the limit in UTF-8 bytes; a string's length in UTF-16 units never exceeds that, so it is checked first. */
function tooLong(text: string): boolean {
  return text.length > MAX_INPUT_BYTES || encoder.encode(text).length > MAX_INPUT_BYTES;
}

/** The parts of a key blob whose own type string is `algorithm`, checked as OpenSSH would and stricter. */
function readKeyBlob(algorithm: string, blob: Uint8Array<ArrayBuffer>): { parts: KeyParts; bits: number } {
  const r = new WireReader(blob, 'the key data');
  const inner = r.text();
  if (inner !== algorithm) {
    throw new Refusal(`the key says it is ${shown(algorithm)} but its data is ${shown(inner) || 'untyped'}`);
  }
  if (algorithm === 'ssh-ed25519') {
    const key = r.string();
    r.end();
    if (key.length !== 32) throw new Refusal('an ssh-ed25519 key must be 32 bytes');
    return { parts: { kind: 'ed25519', key }, bits: 256 };
  }
  const curve = CURVES.get(algorithm);
  if (curve) {
    const name = r.text();
    const point = r.string();
    r.end();
    if (name !== curve.name) {
      throw new Refusal(`an ${algorithm} key must be on curve ${curve.name}, not ${shown(name)}`);
    }
    if (point.length !== 1 + 2 * curve.size || point[0] !== 0x04) {
      throw new Refusal(`an ${algorithm} key must hold an uncompressed ${curve.name} point`);
    }
    return { parts: { kind: 'ecdsa', curve, point }, bits: curve.bits };
  }
  if (algorithm === 'ssh-rsa') {
    const e = r.unsignedMpint();
    const n = r.unsignedMpint();
    r.end();
    const bits = bitLength(n);
    if (bits < RSA_MIN_BITS) throw new Refusal(`RSA keys must be at least ${RSA_MIN_BITS} bits`);
    if (bits > RSA_MAX_BITS) throw new Refusal(`RSA keys must be at most ${RSA_MAX_BITS} bits`);
    if (bitLength(e) < 2 || ((e[e.length - 1] ?? 0) & 1) === 0 || e.length > n.length) {
      throw new Refusal('the RSA key has an invalid public exponent');
    }
    return { parts: { kind: 'rsa', e, n }, bits };
  }
  throw new Refusal(unsupportedType(algorithm));
}

/** The key as Web Crypto's verify wants it; `rsaHash` picks the hash an RSA key is bound to. */
async function importKey(parts: KeyParts, rsaHash: 'SHA-256' | 'SHA-512' = 'SHA-256'): Promise<CryptoKey> {
  try {
    switch (parts.kind) {
      case 'ed25519':
        return await crypto.subtle.importKey('raw', parts.key, { name: 'Ed25519' }, false, ['verify']);
      case 'ecdsa':
        return await crypto.subtle.importKey(
          'raw',
          parts.point,
          { name: 'ECDSA', namedCurve: parts.curve.webCurve },
          false,
          ['verify'],
        );
      case 'rsa':
        return await crypto.subtle.importKey(
          'jwk',
          { kty: 'RSA', n: toBase64Url(parts.n), e: toBase64Url(parts.e), ext: true },
          { name: 'RSASSA-PKCS1-v1_5', hash: rsaHash },
          false,
          ['verify'],
        );
    }
  } catch {
    throw new Refusal(
      parts.kind === 'ecdsa'
        ? `the key's point is not on curve ${parts.curve.name}`
        : `the key is not a valid ${parts.kind === 'rsa' ? 'RSA' : 'Ed25519'} public key`,
    );
  }
}

/** The comment as shown to people: whitespace runs made one space, control and format characters removed, capped. */
function cleanComment(raw: string): string {
  const text = raw
    .replace(/\s+/gu, ' ')
    .replace(/[\p{Cc}\p{Cf}\p{Cs}\p{Co}]/gu, '')
    .trim();
  return Array.from(text).slice(0, MAX_COMMENT_CHARS).join('').trim();
}

function lineRefusal(text: string, tokens: readonly string[]): string {
  const first = tokens[0] ?? '';
  if (/^(ssh|ecdsa|sk|rsa|x509v3|pgp|spki)-/u.test(first) || first.endsWith('@openssh.com')) {
    return unsupportedType(first);
  }
  if (tokens.slice(1).some((t) => SSH_KEY_ALGORITHMS.includes(t))) {
    return 'options before the key type are not accepted; paste the plain "TYPE BASE64 [comment]" line of the .pub file';
  }
  if (/^-----BEGIN |^---- BEGIN /u.test(text)) {
    return 'not an OpenSSH public key line; paste the one line of the .pub file ("TYPE BASE64 [comment]")';
  }
  return 'not an OpenSSH public key: expected "TYPE BASE64 [comment]", the line of the .pub file';
}

async function parseKeyLine(line: string): Promise<SshPublicKey> {
  if (typeof line !== 'string') throw new Refusal('the key must be text');
  if (tooLong(line)) throw new Refusal(`the key line is longer than ${MAX_INPUT_BYTES / 1024} KiB`);
  const text = line.trim();
  if (text.length === 0) throw new Refusal('the key is empty');
  if (/-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/u.test(text)) {
    throw new Refusal('that is a private key; paste the public key (the .pub file)');
  }
  if (/[\r\n]/u.test(text)) throw new Refusal('paste one key on one line');
  const [, algorithm = '', encoded, rest = ''] = /^(\S+)(?:\s+(\S+))?(?:\s+(.*))?$/su.exec(text) ?? [];
  if (!SSH_KEY_ALGORITHMS.includes(algorithm)) throw new Refusal(lineRefusal(text, text.split(/\s+/u)));
  if (encoded === undefined) throw new Refusal(`the ${algorithm} key has no key data after its type`);
  const blob = fromBase64(encoded);
  if (blob === undefined) throw new Refusal('the key data is not valid base64');
  const { parts, bits } = readKeyBlob(algorithm, blob);
  await importKey(parts);
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', blob));
  return {
    algorithm,
    blob,
    text: `${algorithm} ${toBase64(blob)}`,
    comment: cleanComment(rest),
    fingerprint: `SHA256:${toBase64(digest).replace(/=+$/u, '')}`,
    bits,
  };
}

/** Parse one `TYPE BASE64 [comment]` line (no authorized_keys options), checking the key is well formed and supported. */
export async function parsePublicKey(
  line: string,
): Promise<{ ok: true; key: SshPublicKey } | { ok: false; message: string }> {
  try {
    return { ok: true, key: await parseKeyLine(line) };
  } catch (err) {
    return { ok: false, message: err instanceof Refusal ? err.message : 'the key could not be read' };
  }
}

function armoredBlob(armored: string): Uint8Array<ArrayBuffer> {
  if (typeof armored !== 'string') throw new Refusal('the signature must be text');
  if (tooLong(armored)) throw new Refusal(`the signature is longer than ${MAX_INPUT_BYTES / 1024} KiB`);
  const text = armored.trim();
  if (
    !text.startsWith(ARMOR_BEGIN) ||
    !text.endsWith(ARMOR_END) ||
    text.length < ARMOR_BEGIN.length + ARMOR_END.length
  ) {
    throw new Refusal(
      `not an SSH signature: expected the ${ARMOR_BEGIN} block that ssh-keygen -Y sign writes`,
    );
  }
  const blob = fromBase64(
    text.slice(ARMOR_BEGIN.length, text.length - ARMOR_END.length).replace(/\s+/gu, ''),
  );
  if (blob === undefined) throw new Refusal('the signature body is not valid base64');
  return blob;
}

/** What Web Crypto's verify takes for this signature, after checking it fits the key. */
async function verifier(
  parts: KeyParts,
  algorithm: string,
  format: string,
  signature: Uint8Array<ArrayBuffer>,
): Promise<{
  params: AlgorithmIdentifier | EcdsaParams;
  key: CryptoKey;
  signature: Uint8Array<ArrayBuffer>;
}> {
  switch (parts.kind) {
    case 'ed25519': {
      if (format !== 'ssh-ed25519')
        throw new Refusal(`an ssh-ed25519 key cannot make a ${shown(format)} signature`);
      if (signature.length !== 64) throw new Refusal('an ssh-ed25519 signature must be 64 bytes');
      return { params: { name: 'Ed25519' }, key: await importKey(parts), signature };
    }
    case 'ecdsa': {
      if (format !== algorithm)
        throw new Refusal(`an ${algorithm} key cannot make a ${shown(format)} signature`);
      const { size, hash } = parts.curve;
      const r = new WireReader(signature, 'the ECDSA signature');
      const rv = r.unsignedMpint();
      const sv = r.unsignedMpint();
      r.end();
      if (rv.length === 0 || sv.length === 0 || rv.length > size || sv.length > size) {
        throw new Refusal('the ECDSA signature is out of range for its curve');
      }
      // Web Crypto takes r and s as fixed-width big-endian halves, not as SSH mpints.
      const raw = new Uint8Array(2 * size);
      raw.set(rv, size - rv.length);
      raw.set(sv, 2 * size - sv.length);
      return { params: { name: 'ECDSA', hash }, key: await importKey(parts), signature: raw };
    }
    case 'rsa': {
      if (format === 'ssh-rsa') {
        throw new Refusal(
          'RSA signatures over SHA-1 (ssh-rsa) are refused; sign with rsa-sha2-256 or rsa-sha2-512',
        );
      }
      const hash = format === 'rsa-sha2-256' ? 'SHA-256' : format === 'rsa-sha2-512' ? 'SHA-512' : undefined;
      if (hash === undefined) throw new Refusal(`an ssh-rsa key cannot make a ${shown(format)} signature`);
      if (signature.length > parts.n.length)
        throw new Refusal('the RSA signature is longer than the modulus');
      // OpenSSH accepts a signature with its leading zero bytes dropped; Web Crypto wants the modulus's width.
      const padded = new Uint8Array(parts.n.length);
      padded.set(signature, parts.n.length - signature.length);
      return { params: { name: 'RSASSA-PKCS1-v1_5' }, key: await importKey(parts, hash), signature: padded };
    }
  }
}

async function verifyArmored(
  armored: string,
  key: SshPublicKey,
  namespace: string,
  messages: readonly Uint8Array[],
): Promise<boolean> {
  if (messages.length === 0) throw new Refusal('there is no message to check the signature against');
  const r = new WireReader(armoredBlob(armored), 'the signature');
  if (!sameBytes(r.take(MAGIC_BYTES.length), MAGIC_BYTES)) throw new Refusal('not an SSHSIG signature');
  const version = r.uint32();
  if (version !== SSHSIG_VERSION) throw new Refusal(`unsupported SSHSIG version ${version}`);
  const publicKey = r.string();
  const signedNamespace = r.string();
  const reserved = r.string();
  const hashName = r.text();
  const sigField = r.string();
  r.end();
  if (!sameBytes(publicKey, key.blob)) throw new Refusal('the signature was made by a different key');
  const wanted = encoder.encode(namespace);
  if (!sameBytes(signedNamespace, wanted)) {
    throw new Refusal(
      `the signature is for namespace "${shown(latin1(signedNamespace))}", not "${shown(namespace)}"`,
    );
  }
  // ssh-keygen always signs over an empty reserved field, whatever the signature carries.
  if (reserved.length !== 0) throw new Refusal('the signature has a non-empty reserved field');
  const hash = SSHSIG_HASHES.get(hashName);
  if (hash === undefined) {
    throw new Refusal(`unsupported signature hash ${shown(hashName)}; use sha256 or sha512`);
  }
  const s = new WireReader(sigField, 'the signature value');
  const format = s.text();
  const value = s.string();
  s.end();
  const { parts } = readKeyBlob(key.algorithm, new Uint8Array(key.blob));
  const check = await verifier(parts, key.algorithm, format, value);
  const prefix = concat([
    MAGIC_BYTES,
    wireString(wanted),
    wireString(new Uint8Array(0)),
    wireString(encoder.encode(hashName)),
  ]);
  for (const message of messages) {
    const digest = new Uint8Array(await crypto.subtle.digest(hash, new Uint8Array(message)));
    const signed = concat([prefix, wireString(digest)]);
    if (await crypto.subtle.verify(check.params, check.key, check.signature, signed)) return true;
  }
  return false;
}

/** Check an armored SSHSIG (`ssh-keygen -Y sign -n NAMESPACE`) by `key` over any one of `messages`. */
export async function verifySshSignature(
  armored: string,
  key: SshPublicKey,
  namespace: string,
  messages: readonly Uint8Array[],
): Promise<{ ok: true } | { ok: false; message: string }> {
  try {
    if (await verifyArmored(armored, key, namespace, messages)) return { ok: true };
    return { ok: false, message: 'the signature does not match the expected message' };
  } catch (err) {
    return {
      ok: false,
      message: err instanceof Refusal ? err.message : 'the signature could not be checked',
    };
  }
}
