// The relay's web listeners: `portal.listen` (recipients) and `api.listen` (API,
// dashboard, health), each its own HTTPS server presenting the ingress
// certificate. Both are off unless configured, so an install without them opens no
// HTTP port at all. Listener addresses are fixed for the process (a change needs a
// restart, as for ingress); the certificate and portal.public_url follow reloads.
import type { Config } from '../config/schema.ts';
import type { Logger } from '../log.ts';
import { registerHealth } from './health.ts';
import { registerHome } from './home.ts';
// Types only: a listener's code (fastify, ajv, the API, the portal's pages) is loaded when
// that listener is built, so a relay without them does not carry them (about 35 MB of
// idle RSS: README "Benchmarks").
import type { MetricsDeps } from './metrics.ts';
import type { ApiWebDeps } from './api/index.ts';
import type { PortalWebDeps } from './portal/index.ts';
import type { TrackingWebDeps } from '../reporting/tracking/routes.ts';
import type { HttpServer, TlsPair } from './server.ts';

export type WebListenerName = 'portal' | 'api';

export interface WebListenerInfo {
  readonly name: WebListenerName;
  readonly host: string;
  readonly port: number;
  readonly url: string;
}

export interface WebListeners {
  readonly listeners: readonly WebListenerInfo[];
  /** Throws, changing nothing, when `config` asks for what a reload cannot do. */
  checkReload(config: Config): void;
  reload(config: Config, tls: TlsPair): void;
  setTls(tls: TlsPair): void;
  close(): Promise<void>;
}

interface Wanted {
  readonly name: WebListenerName;
  readonly listen: { host: string; port: number };
}

function wanted(config: Config): Wanted[] {
  const out: Wanted[] = [];
  if (config.portal.listen) out.push({ name: 'portal', listen: config.portal.listen });
  if (config.api.listen) out.push({ name: 'api', listen: config.api.listen });
  return out;
}

/** A listener's server with its routes, not yet listening (tests enumerate its routes). */
export async function buildWebServer(
  name: WebListenerName,
  opts: {
    config: Config;
    logger: Logger;
    tls: TlsPair;
    listen?: { host: string; port: number };
    now?: () => number;
    /** The portal's store, keys and mail queue: with them the portal listener serves items (src/http/portal/). */
    portal?: PortalWebDeps;
    /** The config as it is now (reloads change it); `config` when absent. */
    currentConfig?: () => Config;
    /** GET /metrics on the api listener: the store, the queue lifetime and who may scrape (guard); absent: no /metrics. */
    metrics?: Omit<MetricsDeps, 'guard'>;
    /** The store and tracking.key: with them the portal listener serves the tracking and unsubscribe links (src/reporting/tracking/). */
    tracking?: TrackingWebDeps;
    /** The store and the delivery kick: with them the api listener serves the REST API (src/http/api/). */
    api?: ApiWebDeps;
  },
): Promise<HttpServer> {
  const { config } = opts;
  const listen = opts.listen ?? (name === 'portal' ? config.portal.listen : config.api.listen) ?? { host: '127.0.0.1', port: 0 };
  const { createHttpServer } = await import('./server.ts');
  const server = await createHttpServer({
    name,
    listen,
    tls: opts.tls,
    logger: opts.logger,
    publicUrl: name === 'portal' ? config.portal.public_url : null,
    // Recipients see who sent them the message (fixed for the process, like the listener).
    siteName: name === 'portal' ? config.portal.organisation.name : 'SealRelay',
    now: opts.now,
    // Fixed for the process: Sessions takes its idle timeout when it is made.
    sessionIdleMs: name === 'portal' && opts.portal ? config.portal.session_idle_seconds * 1000 : undefined,
  });
  registerHealth(server.app, name);
  if (name === 'portal') {
    registerHome(server.app, { title: 'Secure messages', lead: 'Messages sent to you securely are read here. Open the link in the email that told you about your message.' });
    if (opts.portal) (await import('./portal/index.ts')).registerPortal(server, opts.portal, { config: opts.currentConfig ?? (() => config), now: opts.now ?? Date.now });
    // Tracking pixels, click redirects and unsubscribe pages (src/reporting/tracking/): recipients follow them.
    if (opts.tracking) (await import('../reporting/tracking/routes.ts')).registerTracking(server, opts.tracking, { config: opts.currentConfig ?? (() => config), now: opts.now ?? Date.now });
  } else {
    registerHome(server.app, { title: 'SealRelay', lead: 'This is the SealRelay API and dashboard listener.' });
    // The REST API (src/http/api/).
    const api = opts.api ? (await import('./api/index.ts')).registerApi(server, opts.api, { config: opts.currentConfig ?? (() => config), logger: opts.logger, now: opts.now ?? Date.now }) : null;
    // Prometheus /metrics (src/http/metrics.ts), scraped with a token of the metrics scope.
    if (opts.metrics && api) (await import('./metrics.ts')).registerMetrics(server.app, { ...opts.metrics, guard: api.guard('metrics') });
  }
  return server;
}

export async function startWebListeners(opts: {
  config: Config;
  logger: Logger;
  tls: TlsPair;
  portal?: PortalWebDeps;
  api?: ApiWebDeps;
  tracking?: TrackingWebDeps;
  metrics?: Omit<MetricsDeps, 'guard'>;
}): Promise<WebListeners> {
  // Portal pages read their settings from here at each request, so a reload reaches them.
  let current = opts.config;
  const servers: HttpServer[] = [];
  const listeners: WebListenerInfo[] = [];
  try {
    for (const w of wanted(opts.config)) {
      const server = await buildWebServer(w.name, { ...opts, listen: w.listen, currentConfig: () => current });
      servers.push(server);
      const bound = await server.listen();
      listeners.push({ name: w.name, ...bound });
      opts.logger.info({ event: 'http.started', listener: w.name, host: bound.host, port: bound.port }, `${w.name} listening on ${bound.url}`);
      if (w.name === 'api' && !isLoopback(bound.host)) {
        opts.logger.warn({ event: 'http.exposed', listener: w.name, host: bound.host }, `the API listener is reachable from other hosts (${bound.host}); keep it behind a firewall or proxy`);
      }
    }
  } catch (err) {
    await Promise.all(servers.map((s) => s.close()));
    throw new Error(`cannot listen for HTTPS: ${(err as Error).message}`, { cause: err });
  }

  let configured = wanted(opts.config);
  const describe = (ws: readonly Wanted[]) => ws.map((w) => `${w.name} ${w.listen.host}:${w.listen.port}`).join(', ') || 'none';
  const checkReload = (config: Config) => {
    const before = describe(configured);
    const after = describe(wanted(config));
    if (before !== after) throw new Error(`web listener changes need a restart: ${before} → ${after}`);
  };
  const setTls = (tls: TlsPair) => {
    for (const s of servers) s.setTls(tls);
  };
  return {
    listeners,
    checkReload,
    reload(config, tls) {
      checkReload(config);
      setTls(tls);
      for (const s of servers) if (s.name === 'portal') s.setPublicUrl(config.portal.public_url);
      configured = wanted(config);
      current = config;
    },
    setTls,
    async close() {
      await Promise.all(servers.map((s) => s.close()));
      for (const l of listeners) opts.logger.info({ event: 'http.stopped', listener: l.name }, `${l.name} listener closed`);
    },
  };
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\./.test(host);
}
