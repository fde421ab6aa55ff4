// A real OpenID Provider (oidc-provider) on https for tests; it signs in whoever the test names.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import Provider from 'oidc-provider';

/** A running provider. */
export interface TestIdp {
  readonly issuer: string;
  readonly clientId: string;
  readonly clientSecret: string;
  /** The account the next sign-in completes as (claims: preferred_username = this name). */
  user: string;
  /** Claims that replace the ones derived from `user` in the ID tokens issued from now on. */
  claims: Record<string, unknown>;
  /** While set, the provider answers nothing until it resolves (to hold several sign-ins open at once). */
  hold: Promise<void> | undefined;
  /**
   * Sign in through a form the browser posts (button `#idp-sign-in`), as a real provider's password
   * page does, instead of redirecting straight on. A fragment does not survive a form post.
   */
  loginForm: boolean;
  stop(): Promise<void>;
}

/** Start the provider with one client that may redirect to `${origin}/auth/callback` of each origin. */
export async function startIdp(
  tls: { cert: Buffer; key: Buffer },
  publicOrigins: string[],
): Promise<TestIdp> {
  let handler: ((req: IncomingMessage, res: ServerResponse) => void) | undefined;
  const server: Server = createServer({ cert: tls.cert, key: tls.key }, (req, res) => handler?.(req, res));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const issuer = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const idp: TestIdp = {
    issuer,
    clientId: 'runspec-room',
    clientSecret: 'a-client-secret-for-tests-only',
    user: 'alice',
    claims: {},
    hold: undefined,
    loginForm: false,
    stop: () => new Promise((resolve) => server.close(() => resolve())),
  };
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: idp.clientId,
        client_secret: idp.clientSecret,
        redirect_uris: publicOrigins.map((o) => `${o}/auth/callback`),
        post_logout_redirect_uris: publicOrigins.map((o) => `${o}/`),
        response_types: ['code'],
        grant_types: ['authorization_code'],
      },
    ],
    // The subject differs from the display name, so a test can tell which one the server used.
    findAccount: async (_ctx: unknown, sub: string) => {
      const name = sub.replace(/^sub-/u, '');
      return {
        accountId: sub,
        claims: async () => ({
          sub,
          preferred_username: name,
          email: `${name}@example.test`,
          name: `Name ${name}`,
          ...idp.claims,
        }),
      };
    },
    claims: { openid: ['sub'], profile: ['name', 'preferred_username'], email: ['email'] },
    // Put the profile claims in the ID token itself, which is what the server reads.
    conformIdTokenClaims: false,
    interactions: { url: (_ctx: unknown, interaction: { uid: string }) => `/interaction/${interaction.uid}` },
    features: { devInteractions: { enabled: false }, rpInitiatedLogout: { enabled: true } },
    cookies: { keys: ['cookie-key-for-tests-only'] },
  } as never);
  provider.on('server_error', (_ctx: unknown, error: Error) =>
    process.stderr.write(`idp error: ${error.stack}\n`),
  );
  const callback = provider.callback();
  handler = (req, res) => {
    void Promise.resolve(idp.hold).then(() => {
      const url = (req as { url?: string }).url ?? '';
      if (url.startsWith('/interaction/')) void interact(provider, idp, req, res);
      else callback(req, res);
    });
  };
  return idp;
}

// Completes login and consent without a form: the test decides who signs in.
async function interact(
  provider: Provider,
  idp: TestIdp,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const details = await provider.interactionDetails(req, res);
  const { prompt, params, session } = details as unknown as {
    prompt: { name: string };
    params: Record<string, string>;
    session?: { accountId: string };
    grantId?: string;
  };
  if (prompt.name === 'login' && idp.loginForm && req.method === 'GET') {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(
      `<!doctype html><title>Sign in</title><form method="post" action="${req.url}"><button id="idp-sign-in">Sign in</button></form>`,
    );
    return;
  }
  if (prompt.name === 'login') {
    await provider.interactionFinished(
      req,
      res,
      { login: { accountId: `sub-${idp.user}` } },
      { mergeWithLastSubmission: false },
    );
    return;
  }
  const grant = new provider.Grant({
    accountId: session?.accountId ?? `sub-${idp.user}`,
    clientId: params.client_id ?? '',
  });
  grant.addOIDCScope(params.scope ?? 'openid');
  const grantId = await grant.save();
  await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
}
