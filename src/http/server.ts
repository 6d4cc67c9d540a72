// createHttpServer: one HTTPS listener of the web side (the portal, the API and
// dashboard), on fastify, with everything a page or endpoint must not do without
// already in place: security headers and CSP (security-headers.ts), the session
// (sessions.ts), the CSRF check on every state-changing request (csrf.ts), rate
// limits (limits.ts), error pages (errors.ts) and local assets (assets.ts).
// Features add their routes to `app` afterwards, as fastify plugins; nothing here
// knows about the portal or the API.
//
// TLS: at least 1.2 (as ingress), forward-secret AEAD suites only (Mozilla's
// "intermediate" list); the certificate is swapped in place by setTls, so a
// renewed certificate reaches new connections without a restart.
// Logs: fastify's own request logging is off (it would log URLs, and portal URLs
// carry tokens); errors are logged by route pattern in errors.ts.
import { createSecureContext } from 'node:tls';
import { randomBytes } from 'node:crypto';
import type { Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import cookie from '@fastify/cookie';
import formbody from '@fastify/formbody';
import Fastify, { LogController, type FastifyInstance } from 'fastify';
import type { Logger } from '../log.ts';
import { registerAssets } from './assets.ts';
import { Csrf, registerCsrf } from './csrf.ts';
import { registerErrorPages } from './errors.ts';
import { RequestLimits } from './limits.ts';
import { MemoryRateLimitStore, RateLimiter, type RateLimitStore } from './rate-limit.ts';
import { recordRoutes, StateProbes, type RouteEntry } from './safe-requests.ts';
import { registerSecurityHeaders } from './security-headers.ts';
import { MemorySessionStore, type SessionStore } from './session-store.ts';
import { registerSessions, Sessions } from './sessions.ts';

/** Same floor as ingress: RFC 8996 retired TLS 1.0 and 1.1. */
const MIN_TLS_VERSION = 'TLSv1.2';
/** TLS 1.2 suites: ECDHE with AES-GCM or ChaCha20 only (TLS 1.3's suites are all AEAD and stay Node's default). */
const TLS12_CIPHERS = [
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
].join(':');
/** Largest request body (forms, JSON); routes that take files set their own. */
const BODY_LIMIT_BYTES = 1024 * 1024;
/** A request must arrive whole within this (slow-loris). */
const REQUEST_TIMEOUT_MS = 30_000;
/** On close, requests in flight get this long before their connections are cut. */
const CLOSE_GRACE_MS = 1000;
/** Random bytes of a request's reference (shown on error pages, logged with the failure). */
const REFERENCE_BYTES = 6;

export interface TlsPair {
  readonly cert: string | Buffer;
  readonly key: string | Buffer;
}

export interface HttpServerOptions {
  /** The listener's name ("portal", "api"): in log lines and cookie names. */
  readonly name: string;
  readonly listen: { readonly host: string; readonly port: number };
  readonly tls: TlsPair;
  readonly logger: Logger;
  /** What pages call the service; "SealRelay" by default. */
  readonly siteName?: string;
  /** Where browsers reach us (portal.public_url): forms must come from its origin. Null: the request's own https://<Host>. */
  readonly publicUrl?: string | null;
  readonly sessionStore?: SessionStore;
  readonly sessionIdleMs?: number;
  readonly sessionAbsoluteMs?: number;
  readonly rateLimitStore?: RateLimitStore;
  /** Signs CSRF tokens; a fresh random key per process unless given (several nodes need one shared). */
  readonly csrfKey?: Buffer;
  /** The clock (tests move it). */
  readonly now?: () => number;
}

export interface HttpServer {
  readonly name: string;
  /** The fastify instance: features register their routes here before listen(). */
  readonly app: FastifyInstance;
  readonly sessions: Sessions;
  readonly csrf: Csrf;
  readonly limits: RequestLimits;
  /** State holders, for the GET side-effect test. */
  readonly stateProbes: StateProbes;
  /** Every route registered so far. */
  readonly routes: readonly RouteEntry[];
  listen(): Promise<{ host: string; port: number; url: string }>;
  setPublicUrl(url: string | null): void;
  /** Serves `tls` to new connections; throws, changing nothing, when the pair is unusable. */
  setTls(tls: TlsPair): void;
  close(): Promise<void>;
}

export async function createHttpServer(opts: HttpServerOptions): Promise<HttpServer> {
  const now = opts.now ?? Date.now;
  const logger = opts.logger.child({ listener: opts.name });
  // Typed as the plain instance features expect: only setTls needs to know the raw server is https.
  const app = Fastify({
    https: { key: opts.tls.key, cert: opts.tls.cert, minVersion: MIN_TLS_VERSION, ciphers: TLS12_CIPHERS, honorCipherOrder: true },
    loggerInstance: logger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: BODY_LIMIT_BYTES,
    requestTimeout: REQUEST_TIMEOUT_MS,
    trustProxy: false,
    genReqId: () => randomBytes(REFERENCE_BYTES).toString('hex'),
  }) as unknown as FastifyInstance;
  const routes = recordRoutes(app);
  const stateProbes = new StateProbes();
  app.decorate('siteName', opts.siteName ?? 'SealRelay');

  await app.register(cookie);
  await app.register(formbody, { bodyLimit: BODY_LIMIT_BYTES });
  registerSecurityHeaders(app);

  const sessions = new Sessions({ store: opts.sessionStore ?? new MemorySessionStore(), listener: opts.name, idleMs: opts.sessionIdleMs, absoluteMs: opts.sessionAbsoluteMs, now });
  sessions.registerProbe(stateProbes, 'sessions');
  registerSessions(app, sessions);

  let origins = originsOf(opts.publicUrl ?? null);
  const csrf = new Csrf({ listener: opts.name, key: opts.csrfKey ?? randomBytes(32), origins: () => origins, now });
  registerCsrf(app, csrf);

  const limitStore = opts.rateLimitStore ?? new MemoryRateLimitStore();
  if (limitStore.describe) stateProbes.add('rate-limits', () => limitStore.describe!());
  const limits = new RequestLimits(new RateLimiter(limitStore, now), now);

  registerErrorPages(app, logger);
  registerAssets(app);

  return {
    name: opts.name,
    app,
    sessions,
    csrf,
    limits,
    stateProbes,
    routes,
    async listen() {
      await app.listen({ host: opts.listen.host, port: opts.listen.port });
      const { port } = app.server.address() as AddressInfo;
      const host = opts.listen.host;
      return { host, port, url: `https://${host.includes(':') ? `[${host}]` : host}:${port}` };
    },
    setPublicUrl(url) {
      origins = originsOf(url);
    },
    setTls(tls) {
      const options = { key: tls.key, cert: tls.cert, minVersion: MIN_TLS_VERSION, ciphers: TLS12_CIPHERS } as const;
      createSecureContext(options);
      (app.server as unknown as HttpsServer).setSecureContext(options);
    },
    async close() {
      // Requests in flight get a moment to finish; then any connection still open
      // (a browser's spare keep-alive or preconnected socket) is cut, so that a
      // shutdown never waits out requestTimeout for a client that sends nothing.
      const cut = setTimeout(() => app.server.closeAllConnections(), CLOSE_GRACE_MS);
      try {
        await app.close();
      } finally {
        clearTimeout(cut);
      }
    },
  };
}

function originsOf(publicUrl: string | null): string[] {
  return publicUrl ? [new URL(publicUrl).origin] : [];
}
