// The one CSRF defence of the web side, checked before every state-changing
// request (POST, PUT, PATCH, DELETE) reaches its handler. Three layers, each
// enough against a plain cross-site form on its own:
//
// 1. Where it came from: a browser says so. `Sec-Fetch-Site`, where sent, must be
//    `same-origin`; an `Origin` header that names an origin must be ours
//    (portal.public_url's origin, or else https://<Host>). Refused otherwise, token
//    or not. `Origin: null` says nothing: our own Referrer-Policy (no-referrer)
//    makes browsers send exactly that on our own forms (Fetch, "serializing a
//    request origin"), so it is left to Sec-Fetch-Site and the token.
// 2. A signed token (the "signed double-submit" pattern): each form carries
//    `_csrf` = time + HMAC-SHA256(server key, time, csrf cookie, session binding).
//    The __Host-<listener>-csrf cookie holds 128 random bits; the session binding
//    is the session id's hash, or empty before there is a session. A token made
//    for another browser, another session (a rotation changes it), by another
//    server key, or older than TOKEN_MAX_AGE_MS does not verify.
// 3. SameSite=Strict on both cookies: another site's request carries neither.
//
// Why signed double-submit rather than a synchronizer token stored in the
// session: the portal's first form ("send me a code") comes before any session,
// and minting a server-side session for every landing page would make each GET
// (and every mail scanner fetching the link) create state. The token needs no
// server storage yet is bound to the session as soon as there is one.
//
// A route authenticated by a bearer token (the REST API) carries no ambient
// credential a forged request could borrow; it says so with
// `config: { csrf: 'bearer-token' }`. A one-click unsubscribe (RFC 8058) is posted by
// mail providers' servers with no cookie at all; the signed token in its URL is the
// whole authority, so it says `config: { csrf: 'signed-link' }`. Those two are the
// only kinds of route exempt.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { SAFE_METHODS } from './safe-requests.ts';

declare module 'fastify' {
  interface FastifyContextConfig {
    /**
     * 'bearer-token': the route authenticates only by an Authorization header, so no CSRF check.
     * 'signed-link': the signed token in the URL is the only authority (RFC 8058 one-click
     * unsubscribe, posted by mail providers without cookies): no ambient credential to borrow.
     */
    csrf?: 'bearer-token' | 'signed-link';
  }
}

/** The form field and the header (for our own scripts) that carry the token. */
export const CSRF_FIELD = '_csrf';
export const CSRF_HEADER = 'x-csrf-token';
/** 128 random bits in the cookie. */
const COOKIE_BYTES = 16;
/** A form older than this must be reloaded (the page says so). */
export const TOKEN_MAX_AGE_MS = 12 * 60 * 60_000;

export type CsrfRefusal = 'origin' | 'fetch-site' | 'token-missing' | 'token-invalid' | 'token-expired';

export class CsrfError extends Error {
  readonly statusCode = 403;
  constructor(readonly reason: CsrfRefusal) {
    super(`CSRF check failed: ${reason}`);
    this.name = 'CsrfError';
  }
}

export interface CsrfOptions {
  /** Names the cookie: __Host-<listener>-csrf. */
  readonly listener: string;
  /** HMAC key; all nodes behind one name need the same one. */
  readonly key: Buffer;
  /** The origins our forms are served from (from portal.public_url); empty: https://<Host> of the request. */
  readonly origins: () => readonly string[];
  readonly now?: () => number;
}

export class Csrf {
  readonly cookieName: string;
  readonly #key: Buffer;
  readonly #origins: () => readonly string[];
  readonly #now: () => number;

  constructor(opts: CsrfOptions) {
    if (opts.key.length < 32) throw new RangeError('csrf: the key needs at least 256 bits');
    this.cookieName = `__Host-${opts.listener}-csrf`;
    this.#key = opts.key;
    this.#origins = opts.origins;
    this.#now = opts.now ?? Date.now;
  }

  /**
   * The token for a form on the page being rendered. Sets the csrf cookie when the
   * browser has none yet (a cookie on the client, not state on the server).
   */
  token(request: FastifyRequest, reply: FastifyReply): string {
    let secret = request.cookies[this.cookieName];
    if (!secret || !/^[A-Za-z0-9_-]{22}$/.test(secret)) {
      secret = randomBytes(COOKIE_BYTES).toString('base64url');
      reply.setCookie(this.cookieName, secret, { path: '/', secure: true, httpOnly: true, sameSite: 'strict' });
      // A second call in the same response must sign with the same cookie.
      request.cookies[this.cookieName] = secret;
    }
    const issued = this.#now().toString(36);
    return `${issued}.${this.#sign(issued, secret, request.session?.binding ?? '')}`;
  }

  /** Throws CsrfError unless the request is one of ours. */
  verify(request: FastifyRequest): void {
    const site = request.headers['sec-fetch-site'];
    if (site !== undefined && site !== 'same-origin') throw new CsrfError('fetch-site');
    const origin = request.headers.origin;
    if (origin !== undefined && origin !== 'null' && !this.#expectedOrigins(request).includes(origin)) throw new CsrfError('origin');

    const sent = tokenFrom(request);
    const secret = request.cookies[this.cookieName];
    if (!sent || !secret) throw new CsrfError('token-missing');
    const [issued, mac, ...rest] = sent.split('.');
    if (!issued || !mac || rest.length) throw new CsrfError('token-invalid');
    const expected = Buffer.from(this.#sign(issued, secret, request.session?.binding ?? ''));
    const given = Buffer.from(mac);
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw new CsrfError('token-invalid');
    const age = this.#now() - parseInt(issued, 36);
    if (!(age >= 0 && age <= TOKEN_MAX_AGE_MS)) throw new CsrfError('token-expired');
  }

  #expectedOrigins(request: FastifyRequest): readonly string[] {
    const configured = this.#origins();
    if (configured.length) return configured;
    const host = request.headers.host;
    return host ? [`https://${host}`] : [];
  }

  #sign(issued: string, secret: string, binding: string): string {
    return createHmac('sha256', this.#key).update(`sealrelay-csrf-v1\0${issued}\0${secret}\0${binding}`).digest('base64url');
  }
}

function tokenFrom(request: FastifyRequest): string | undefined {
  const header = request.headers[CSRF_HEADER];
  if (typeof header === 'string' && header) return header;
  const body = request.body;
  if (body && typeof body === 'object' && CSRF_FIELD in body) {
    const value = (body as Record<string, unknown>)[CSRF_FIELD];
    if (typeof value === 'string') return value;
  }
  return undefined;
}

/** Checks every state-changing request once its body is parsed; routes opt out only as bearer-token or signed-link routes. */
export function registerCsrf(app: FastifyInstance, csrf: Csrf): void {
  app.addHook('preHandler', async (request: FastifyRequest) => {
    if (SAFE_METHODS.has(request.method) || request.is404) return;
    const exempt = request.routeOptions.config?.csrf;
    if (exempt === 'bearer-token' || exempt === 'signed-link') return;
    csrf.verify(request);
  });
}
