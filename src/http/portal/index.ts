// The portal's recipient side on the portal listener: a link's landing page, proof
// of address (proof.ts), and reading, downloading and replying (reading.ts), as one
// fastify plugin on a server from createHttpServer (CSP, CSRF, sessions, rate
// limits and error pages come from there). src/relay.ts hands it the store, the
// keyring and the mail queue; settings are read from the config as it is now.
import type { Config } from '../../config/schema.ts';
import { isPortalRecord, type PortalOutcome } from '../../store/store.ts';
import type { HttpServer } from '../server.ts';
import { PortalContext, type PortalWebDeps } from './context.ts';
import { registerProof } from './proof.ts';
import { registerReading } from './reading.ts';

export type { PortalWebDeps } from './context.ts';

/**
 * Traces of reading, which GETs leave: a landing page fetched (perhaps by a scanner),
 * a verified reader viewing or downloading. Evidence, not state: nothing about the
 * item, its code or its tries changes. The state probe leaves them out; every other
 * portal record (a code sent, a try used, a lock, a reply) is state a GET must never make.
 */
const READING_TRACES: ReadonlySet<PortalOutcome> = new Set(['portal-viewed', 'portal-opened', 'portal-downloaded']);

export function registerPortal(server: HttpServer, deps: PortalWebDeps, opts: { config: () => Config; now: () => number }): void {
  const ctx = new PortalContext(server, deps, opts.config, opts.now);
  server.app.register(async (app) => {
    registerProof(app, ctx);
    await registerReading(app, ctx);
  });
  // For the GET side-effect test (safe-requests.ts): items' codes, tries and locks, the portal records that are state, and the mail queue.
  server.stateProbes.add('portal', async () => {
    const items = await Promise.all((await deps.store.listPortalItems()).map((i) => deps.store.getPortalItem(i.id)));
    const records = (await deps.store.queryLog({})).filter(isPortalRecord).filter((r) => !READING_TRACES.has(r.outcome));
    return {
      items: items.map((i) => i && { id: i.id, code: i.code && { hash: i.code.hash.toString('hex'), expiresAt: i.code.expiresAt, triesLeft: i.code.triesLeft }, lockedUntil: i.lockedUntil, recalledAt: i.recalledAt, erasedAt: i.erasedAt }),
      records: records.map((r) => `${r.at} ${r.itemId} ${r.outcome} ${r.detail ?? ''}`),
      queue: (await deps.store.listQueue()).map((q) => q.queueId),
    };
  });
}
