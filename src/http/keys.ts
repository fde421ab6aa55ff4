// The page's console keys: a signed-in person lists, adds and removes the SSH keys that prove their
// name at the console door. Removing one closes its consoles at once.
import type { Context, Hono } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import * as v from 'valibot';
import type { ConsoleKeys } from '../auth/console-keys.ts';
import { RefusalCode } from '../protocol/codes.ts';
import { Fingerprint, KEY_TEXT_MAX } from '../protocol/frames.ts';
import type { ConsoleKey } from '../store/keys.ts';
import { type AuthDeps, readSession, sameOrigin } from './auth.ts';

/** Longest request body the key routes read, in bytes. */
const BODY_MAX = KEY_TEXT_MAX + 1024;

const NewKey = v.object({
  key: v.pipe(
    v.string('key must be an OpenSSH public key line'),
    v.minLength(1, 'paste a public key, such as the contents of ~/.ssh/id_ed25519.pub'),
    v.maxLength(KEY_TEXT_MAX, `key must be at most ${KEY_TEXT_MAX} characters`),
  ),
  label: v.optional(v.pipe(v.string('label must be text'), v.maxLength(1000, 'label is too long')), ''),
});

/** A key as the page shows it. */
const shown = (k: ConsoleKey) => ({
  fingerprint: k.fingerprint,
  algorithm: k.algorithm,
  label: k.label,
  public_key: k.publicKey,
  created_at: k.createdAt,
  created_by: k.createdBy,
});

const refuse = (
  c: Context,
  status: 400 | 401 | 403 | 404 | 409 | 413 | 503,
  code: RefusalCode,
  message: string,
) => c.json({ error: { code, message } }, status);

/** Add `/api/keys` (GET, POST) and `/api/keys/:fingerprint` (DELETE) for signed-in people. */
export function addKeyRoutes(app: Hono, auth: AuthDeps, keys: ConsoleKeys): void {
  const { log } = auth;

  /** The signed-in name, or the answer to give; changes must come from the server's own pages. */
  const who = async (c: Context, changes: boolean): Promise<string | Response> => {
    c.header('cache-control', 'no-store');
    if (changes && !sameOrigin(c, auth.config))
      return refuse(c, 403, RefusalCode.BadOrigin, 'changes to keys must come from this server’s page');
    const session = await readSession(c, auth);
    if (!session) return refuse(c, 401, RefusalCode.Unauthenticated, 'sign in first');
    return session.user.name;
  };

  app.get('/api/keys', async (c) => {
    const user = await who(c, false);
    if (typeof user !== 'string') return user;
    return c.json({ user, keys: (await keys.list(user)).map(shown) });
  });

  // The body is counted as it arrives (chunked too) and refused at BODY_MAX bytes, never held whole.
  const limit = bodyLimit({
    maxSize: BODY_MAX,
    onError: (c) => refuse(c, 413, RefusalCode.BadRequest, 'the request is too large'),
  });
  app.post('/api/keys', limit, async (c) => {
    const user = await who(c, true);
    if (typeof user !== 'string') return user;
    let body: unknown;
    try {
      body = JSON.parse(await c.req.text());
    } catch {
      return refuse(
        c,
        400,
        RefusalCode.BadRequest,
        'the body must be JSON: {"key": "ssh-ed25519 AAAA…", "label": "…"}',
      );
    }
    const parsed = v.safeParse(NewKey, body);
    if (!parsed.success) return refuse(c, 400, RefusalCode.BadRequest, parsed.issues[0].message);
    const enrolled = await keys.enrol(user, parsed.output.key, parsed.output.label, {
      ts: Date.now() / 1000,
      actor: user,
      via: 'browser',
      action: 'key_add',
    });
    if (!enrolled.ok) {
      return enrolled.reason !== 'bad_key'
        ? refuse(c, 409, RefusalCode.KeyConflict, enrolled.message)
        : refuse(c, 400, RefusalCode.BadKey, enrolled.message);
    }
    log.info('console key added', { user, fingerprint: enrolled.key.fingerprint, via: 'browser' });
    return c.json({ key: shown(enrolled.key) }, 201);
  });

  app.delete('/api/keys/:fingerprint', async (c) => {
    const user = await who(c, true);
    if (typeof user !== 'string') return user;
    const fingerprint = v.safeParse(Fingerprint, decodeURIComponent(c.req.param('fingerprint')));
    if (!fingerprint.success) return refuse(c, 400, RefusalCode.BadRequest, fingerprint.issues[0].message);
    const removed = await keys.remove(
      fingerprint.output,
      { ts: Date.now() / 1000, actor: user, via: 'browser', action: 'key_remove' },
      user,
    );
    if (!removed) return refuse(c, 404, RefusalCode.NotFound, 'you have no key with that fingerprint');
    log.info('console key removed', { user, fingerprint: removed.fingerprint, via: 'browser' });
    return c.body(null, 204);
  });
}
