// Sign-in with an OpenID Provider: a thin wrapper over oauth4webapi (authorization code + PKCE S256).
import * as oauth from 'oauth4webapi';
import type { AuthConfig } from '../config.ts';
import { nameProblem } from '../protocol/frames.ts';

/** Who signed in: keyed by (issuer, subject); `name` is only for display. */
export interface Identity {
  issuer: string;
  subject: string;
  name: string;
}

/** What /login remembers for /auth/callback. */
export interface LoginTransaction {
  state: string;
  nonce: string;
  verifier: string;
  /** Same-origin path to return to after sign-in. */
  returnTo: string;
}

/** Sign-in failed; `code` says where, `cause` carries the library's error. */
export class OidcError extends Error {
  override readonly name = 'OidcError';
  readonly code: 'discovery' | 'callback';

  constructor(code: 'discovery' | 'callback', message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

/**
 * The display name: the first of preferred_username, email, name and the subject that is an
 * acceptable name (nameProblem), trimmed; undefined when none is.
 */
export function displayName(claims: Record<string, unknown>, subject: string): string | undefined {
  for (const value of [claims.preferred_username, claims.email, claims.name, subject]) {
    if (typeof value === 'string' && nameProblem(value.trim()) === undefined) return value.trim();
  }
  return undefined;
}

/** A discovered provider and this server as its client. */
export class Oidc {
  readonly #as: oauth.AuthorizationServer;
  readonly #client: oauth.Client;
  readonly #clientAuth: oauth.ClientAuth;
  readonly #config: AuthConfig;
  readonly #http: { [oauth.allowInsecureRequests]?: boolean };
  /** PUBLIC_URL + /auth/callback: never derived from a request's Host header. */
  readonly redirectUri: string;

  private constructor(as: oauth.AuthorizationServer, config: AuthConfig) {
    this.#as = as;
    this.#config = config;
    this.#client = { client_id: config.clientId };
    const methods = as.token_endpoint_auth_methods_supported;
    this.#clientAuth =
      !methods || methods.includes('client_secret_basic')
        ? oauth.ClientSecretBasic(config.clientSecret)
        : oauth.ClientSecretPost(config.clientSecret);
    this.#http = config.allowHttp ? { [oauth.allowInsecureRequests]: true } : {};
    this.redirectUri = `${config.publicOrigin}/auth/callback`;
  }

  /** Fetch and check the provider's metadata. Throws OidcError('discovery') with a clear reason. */
  static async discover(config: AuthConfig): Promise<Oidc> {
    const http = config.allowHttp ? { [oauth.allowInsecureRequests]: true } : {};
    const where = config.metadataUrl ?? config.issuer ?? '';
    let as: oauth.AuthorizationServer;
    try {
      if (config.metadataUrl) {
        const response = await fetch(config.metadataUrl, { headers: { accept: 'application/json' } });
        const issuer =
          config.issuer ?? String(((await response.clone().json()) as { issuer?: unknown }).issuer ?? '');
        as = await oauth.processDiscoveryResponse(new URL(issuer), response);
      } else {
        const issuer = new URL(config.issuer ?? '');
        as = await oauth.processDiscoveryResponse(
          issuer,
          await oauth.discoveryRequest(issuer, { algorithm: 'oidc', ...http }),
        );
      }
    } catch (error) {
      const reason =
        error instanceof Error
          ? error.cause instanceof Error
            ? `${error.message}: ${error.cause.message}`
            : error.message
          : String(error);
      throw new OidcError('discovery', `OpenID Provider ${where} could not be used: ${reason}`, {
        cause: error,
      });
    }
    if (!as.code_challenge_methods_supported?.includes('S256')) {
      throw new OidcError(
        'discovery',
        `OpenID Provider ${where} does not advertise PKCE S256 (code_challenge_methods_supported)`,
      );
    }
    if (!as.authorization_endpoint || !as.token_endpoint) {
      throw new OidcError(
        'discovery',
        `OpenID Provider ${where} has no authorization or token endpoint in its metadata`,
      );
    }
    return new Oidc(as, config);
  }

  /** A fresh transaction: state, nonce and PKCE verifier. */
  static newTransaction(returnTo: string): LoginTransaction {
    return {
      state: oauth.generateRandomState(),
      nonce: oauth.generateRandomNonce(),
      verifier: oauth.generateRandomCodeVerifier(),
      returnTo,
    };
  }

  /** Where /login sends the browser. */
  async authorizationUrl(tx: LoginTransaction): Promise<URL> {
    const url = new URL(this.#as.authorization_endpoint as string);
    url.searchParams.set('client_id', this.#config.clientId);
    url.searchParams.set('redirect_uri', this.redirectUri);
    url.searchParams.set('response_type', 'code');
    url.searchParams.set('scope', this.#config.scopes.join(' '));
    url.searchParams.set('code_challenge', await oauth.calculatePKCECodeChallenge(tx.verifier));
    url.searchParams.set('code_challenge_method', 'S256');
    url.searchParams.set('state', tx.state);
    url.searchParams.set('nonce', tx.nonce);
    return url;
  }

  /**
   * Complete the callback: oauth4webapi checks state, the RFC 9207 `iss` parameter against the
   * discovered issuer, exchanges the code with the PKCE verifier, and validates the ID token
   * (signature, issuer, audience, expiry, and the nonce, which must be passed or it is not checked).
   */
  async finish(callbackUrl: URL, tx: LoginTransaction): Promise<{ identity: Identity; idToken: string }> {
    try {
      const params = oauth.validateAuthResponse(this.#as, this.#client, callbackUrl, tx.state);
      const response = await oauth.authorizationCodeGrantRequest(
        this.#as,
        this.#client,
        this.#clientAuth,
        params,
        this.redirectUri,
        tx.verifier,
        this.#http,
      );
      const result = await oauth.processAuthorizationCodeResponse(this.#as, this.#client, response, {
        expectedNonce: tx.nonce,
        requireIdToken: true,
      });
      const claims = oauth.getValidatedIdTokenClaims(result);
      if (!claims || !result.id_token) throw new Error('no ID token');
      const name = displayName(claims, claims.sub);
      if (name === undefined)
        throw new Error('no usable name: every name claim and the subject were refused');
      return {
        identity: { issuer: claims.iss, subject: claims.sub, name },
        idToken: result.id_token,
      };
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      const detail =
        error instanceof oauth.AuthorizationResponseError
          ? `${error.error}: ${error.error_description ?? ''}`
          : String(error);
      throw new OidcError(
        'callback',
        `sign-in failed (${typeof code === 'string' ? code : 'error'}): ${detail}`,
        { cause: error },
      );
    }
  }

  /** Origin of the provider's logout endpoint, if it has one. */
  get logoutOrigin(): string | undefined {
    return this.#as.end_session_endpoint ? new URL(this.#as.end_session_endpoint).origin : undefined;
  }

  /** The provider's logout URL for a signed-out session, if it has one (RP-initiated logout). */
  endSessionUrl(idToken: string | null): URL | undefined {
    if (!this.#as.end_session_endpoint) return undefined;
    const url = new URL(this.#as.end_session_endpoint);
    url.searchParams.set('client_id', this.#config.clientId);
    url.searchParams.set('post_logout_redirect_uri', `${this.#config.publicOrigin}/`);
    if (idToken) url.searchParams.set('id_token_hint', idToken);
    return url;
  }
}
