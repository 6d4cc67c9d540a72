// The one session mechanism of the web side: server-side sessions named by a
// random id in a cookie.
//
// - The id is 256 random bits (base64url), kept in the store only as its SHA-256.
// - The cookie is __Host-<listener>-sid: HttpOnly (no script reads it), Secure,
//   SameSite=Strict (no other site's page sends it), Path=/ and no Domain (the
//   __Host- prefix makes the browser insist on both, so a sibling subdomain
//   cannot plant one). The listener's name is in it because browsers share
//   cookies across ports: the portal and the dashboard on one host must not
//   overwrite each other's.
// - A session ends after `idleMs` without a request or `absoluteMs` after it began,
//   whatever the activity.
// - establish() always issues a new id and drops the old one: every change of
//   privilege (a recipient proves their address, an operator signs in) rotates
//   the id, so an id planted or seen before the change is worthless after it.
// - Starting, changing or ending a session refuses a GET (safe-requests.ts).
import { createHash, randomBytes } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { assertMayChangeState, type StateProbes } from './safe-requests.ts';
import type { SessionData, SessionStore } from './session-store.ts';

/** 256 bits: far past the 128 that makes guessing hopeless. */
const SESSION_ID_BYTES = 32;
/** "Last seen" is written at most this often per session (one store write per minute, not per request). */
const TOUCH_EVERY_MS = 60_000;
/** Expired sessions are swept from the store at most this often. */
const SWEEP_EVERY_MS = 60_000;

export const DEFAULT_IDLE_MS = 15 * 60_000;
export const DEFAULT_ABSOLUTE_MS = 8 * 60 * 60_000;

export interface Session {
  readonly data: SessionData;
  readonly createdAt: number;
  /** What CSRF tokens are bound to: the id's hash (never the id). */
  readonly binding: string;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** The live session this request carries, or null. */
    session: Session | null;
  }
}

export interface SessionOptions {
  readonly store: SessionStore;
  /** Names the cookie: __Host-<listener>-sid. */
  readonly listener: string;
  readonly idleMs?: number;
  readonly absoluteMs?: number;
  readonly now?: () => number;
}

export class Sessions {
  readonly cookieName: string;
  readonly idleMs: number;
  readonly absoluteMs: number;
  readonly #store: SessionStore;
  readonly #now: () => number;
  #lastSweep = 0;

  constructor(opts: SessionOptions) {
    this.#store = opts.store;
    this.cookieName = `__Host-${opts.listener}-sid`;
    this.idleMs = opts.idleMs ?? DEFAULT_IDLE_MS;
    this.absoluteMs = opts.absoluteMs ?? DEFAULT_ABSOLUTE_MS;
    this.#now = opts.now ?? Date.now;
    if (!(this.idleMs > 0 && this.absoluteMs >= this.idleMs)) throw new RangeError('sessions: need 0 < idleMs <= absoluteMs');
  }

  /** The live session named by the request's cookie, or null (none, unknown, idle too long or too old). */
  async load(request: FastifyRequest): Promise<Session | null> {
    const id = request.cookies[this.cookieName];
    if (!id) return null;
    const idHash = hashId(id);
    const stored = await this.#store.get(idHash);
    if (!stored) return null;
    const now = this.#now();
    if (now - stored.lastSeenAt >= this.idleMs || now - stored.createdAt >= this.absoluteMs) return null;
    if (now - stored.lastSeenAt >= TOUCH_EVERY_MS) await this.#store.touch(idHash, now);
    return { data: stored.data, createdAt: stored.createdAt, binding: idHash };
  }

  /**
   * Starts a session with `data` under a new id, ending the request's old one: call
   * it on every change of privilege. Sets the cookie on `reply`.
   */
  async establish(request: FastifyRequest, reply: FastifyReply, data: SessionData): Promise<Session> {
    assertMayChangeState(request, 'starting a session');
    await this.#dropCurrent(request);
    await this.#sweep();
    const id = randomBytes(SESSION_ID_BYTES).toString('base64url');
    const now = this.#now();
    const idHash = hashId(id);
    await this.#store.put({ idHash, data, createdAt: now, lastSeenAt: now });
    reply.setCookie(this.cookieName, id, cookieAttributes());
    request.session = { data, createdAt: now, binding: idHash };
    return request.session;
  }

  /** Ends the request's session (sign out) and clears its cookie. */
  async end(request: FastifyRequest, reply: FastifyReply): Promise<void> {
    assertMayChangeState(request, 'ending a session');
    await this.#dropCurrent(request);
    reply.clearCookie(this.cookieName, cookieAttributes());
    request.session = null;
  }

  /** For the GET side-effect check: the sessions and their data (not their times). */
  registerProbe(probes: StateProbes, name: string): void {
    const store = this.#store;
    if (store.describe) probes.add(name, () => store.describe!());
  }

  async #dropCurrent(request: FastifyRequest): Promise<void> {
    const old = request.cookies[this.cookieName];
    if (old) await this.#store.delete(hashId(old));
  }

  async #sweep(): Promise<void> {
    const now = this.#now();
    if (now - this.#lastSweep < SWEEP_EVERY_MS) return;
    this.#lastSweep = now;
    await this.#store.deleteExpired(now - this.idleMs, now - this.absoluteMs);
  }
}

/** Loads the request's session before any handler runs. */
export function registerSessions(app: FastifyInstance, sessions: Sessions): void {
  app.decorateRequest('session', null);
  app.addHook('onRequest', async (request: FastifyRequest) => {
    request.session = await sessions.load(request);
  });
}

/** A session cookie: no Max-Age (it ends with the browser; the server ends it sooner). */
export function cookieAttributes() {
  return { path: '/', secure: true, httpOnly: true, sameSite: 'strict' as const };
}

function hashId(id: string): string {
  return createHash('sha256').update(id).digest('hex');
}
