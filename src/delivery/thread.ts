// The delivery worker on a thread of its own. Ingress and delivery share nothing
// but the store, so the event loop that answers SMTP clients never runs a TLS
// handshake, a policy decision or an encryption of the delivery side: accept
// latency stays flat while the queue drains, and each side's garbage collection
// pauses only itself. The thread builds its own policy and protection from the
// config, reaches the store thread through a port of its own, and sends its log
// lines here, to the relay's one log destination (one writer: lines never interleave).
import { pino } from 'pino';
import type { Worker } from 'node:worker_threads';
import type { Config } from '../config/schema.ts';
import type { Env } from '../config/load.ts';
import type { Logger } from '../log.ts';
import type { ThreadedSqliteStore } from '../store/sqlite/threaded-store.ts';
import { siblingModule, tsxWorker } from '../tsx-worker.ts';
import type { OwnListener } from './loops.ts';

export type ToDeliveryThread =
  | { type: 'kick' }
  | { type: 'reload'; config: Config; env: Env }
  | { type: 'listeners'; listeners: readonly OwnListener[] }
  | { type: 'portal-url'; url: string | null }
  | { type: 'stop'; graceMs: number };
export type FromDeliveryThread =
  | { type: 'ready' }
  | { type: 'failed'; message: string }
  | { type: 'log'; line: string }
  | { type: 'reloaded' }
  | { type: 'reload-failed'; message: string }
  | { type: 'stopped' };

export interface DeliveryThread {
  /** New work was queued: look now instead of at the next poll. */
  kick(): void;
  /** Rejects (and the old settings stay) when the thread cannot load the new config's keys. */
  reload(config: Config): Promise<void>;
  /** Where ingress is bound (its actual ports): delivery never hands mail to one of them. */
  setListeners(listeners: readonly OwnListener[]): void;
  /** Where recipients reach the portal (its bound listener), for the links in notifications. */
  setPortalUrl(url: string | null): void;
  /** Stops claiming, waits up to `graceMs` for attempts in flight, and ends the thread. */
  stop(graceMs: number): Promise<void>;
  /** Whether a thread is running now (not between a death and its restart), and how often one was started again. */
  health(): { alive: boolean; restarts: number };
}

const ENTRY = siblingModule('thread-entry', import.meta.url);
/** After `stopped`, how long the thread may take to end by itself before it is terminated, in ms. */
const EXIT_WAIT_MS = 2000;
/** A thread that died is started again after this long (and every such wait while it cannot start); leases keep its claims safe meanwhile. */
const RESTART_DELAY_MS = 1000;

export interface DeliveryThreadDeps {
  readonly config: Config;
  readonly store: ThreadedSqliteStore;
  readonly logger: Logger;
  /** The environment main.ts captured: the portal's master keys may be in it. */
  readonly env?: Env;
  /** The thread's module; thread-entry.ts unless a test supervises another. */
  readonly entry?: URL;
}

/**
 * Starts the thread; resolves once it runs, rejects with its reason when it cannot
 * start. A thread that dies later is started again (Postfix's master does the same
 * for its delivery agents): what it held is under lease, nothing is lost.
 */
export async function startDeliveryThread(deps: DeliveryThreadDeps): Promise<DeliveryThread> {
  const { store, logger } = deps;
  let config = deps.config;
  /** Ingress's bound listeners once known; a thread started again gets them from the start. */
  let listeners: readonly OwnListener[] | undefined;
  let portalUrl: string | null = null;
  // Lines from the thread are already JSON: they go to the relay's own destination as they are.
  const destination = (logger as unknown as Record<symbol, { write(line: string): void }>)[pino.symbols.streamSym]!;
  let stopping = false;
  /** Answers the thread owes: one waiter per kind of request at a time. */
  const waiting = new Map<string, (m: FromDeliveryThread) => void>();
  const expect = (type: string) => new Promise<FromDeliveryThread>((resolve) => waiting.set(type, resolve));
  const answer = (type: string, m: FromDeliveryThread) => {
    const resolve = waiting.get(type);
    waiting.delete(type);
    resolve?.(m);
  };

  /** The running thread; null while a dead one is being replaced (`replacing`). */
  let current: Worker | null = null;
  let replacing: Promise<void> | null = null;

  async function launch(): Promise<Worker> {
    const storePort = store.connect();
    const w = tsxWorker(deps.entry ?? ENTRY, { workerData: { config, storePort, listeners, env: keyEnv(config, deps.env), portalUrl }, transferList: [storePort] });
    w.on('message', (m: FromDeliveryThread) => {
      if (m.type === 'log') return destination.write(m.line);
      answer(m.type === 'reload-failed' ? 'reloaded' : m.type === 'failed' ? 'ready' : m.type, m);
    });
    let failure: Error | null = null;
    w.on('error', (err) => {
      failure = err;
      logger.error({ event: 'delivery.error', err }, 'delivery thread failed');
    });
    w.on('exit', (code) => {
      // Whatever the thread owed will never come.
      answer('ready', { type: 'failed', message: failure?.message ?? `delivery thread exited during start (code ${code})` });
      answer('reloaded', { type: 'reload-failed', message: 'the delivery thread ended before it answered' });
      answer('stopped', { type: 'stopped' });
      if (w === current && !stopping) replace();
    });
    const m = await expect('ready');
    if (m.type !== 'ready') {
      await w.terminate();
      throw new Error((m as { message: string }).message);
    }
    return w;
  }

  function replace(): void {
    current = null;
    logger.error({ event: 'delivery.error' }, `delivery thread ended unexpectedly; starting it again in ${RESTART_DELAY_MS} ms`);
    replacing = (async () => {
      while (!stopping) {
        await new Promise((resolve) => setTimeout(resolve, RESTART_DELAY_MS));
        if (stopping) return;
        try {
          current = await launch();
          restarts++;
          logger.info({ event: 'delivery.restarted' }, 'delivery thread started again');
          return;
        } catch (err) {
          logger.error({ event: 'delivery.error', err }, 'delivery thread cannot start; trying again');
        }
      }
    })();
  }

  /** The running thread, waiting for a replacement when it died. */
  const live = async (): Promise<Worker | null> => {
    if (!current && replacing) await replacing;
    return current;
  };

  current = await launch();
  let restarts = 0;

  return {
    health: () => ({ alive: current !== null && current.threadId !== -1, restarts }),
    kick() {
      if (!stopping) void live().then((w) => w?.postMessage({ type: 'kick' } satisfies ToDeliveryThread));
    },
    setListeners(bound) {
      const plain = bound.map((l) => ({ host: l.host, port: l.port }));
      listeners = plain;
      if (!stopping) void live().then((w) => w?.postMessage({ type: 'listeners', listeners: plain } satisfies ToDeliveryThread));
    },
    setPortalUrl(url) {
      portalUrl = url;
      if (!stopping) void live().then((w) => w?.postMessage({ type: 'portal-url', url } satisfies ToDeliveryThread));
    },
    async reload(next) {
      const w = await live();
      if (!w) throw new Error('no delivery thread is running');
      const reply = expect('reloaded');
      w.postMessage({ type: 'reload', config: next, env: keyEnv(next, deps.env) } satisfies ToDeliveryThread);
      const m = await reply;
      if (m.type === 'reload-failed') throw new Error(m.message);
      config = next;
    },
    async stop(graceMs) {
      stopping = true;
      await replacing;
      const w = current;
      // threadId is -1 once the thread has ended: nothing to stop.
      if (!w || w.threadId === -1) return;
      const exited = new Promise<void>((resolve) => w.once('exit', () => resolve()));
      const stopped = expect('stopped');
      w.postMessage({ type: 'stop', graceMs } satisfies ToDeliveryThread);
      // The thread answers within its grace; a thread that hangs beyond it is ended.
      await Promise.race([stopped, exited, new Promise((resolve) => setTimeout(resolve, graceMs + EXIT_WAIT_MS))]);
      const timer = setTimeout(() => void w.terminate(), EXIT_WAIT_MS);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Of the environment, only the variables that hold the config's portal master keys and tracking key go to the thread. */
function keyEnv(config: Config, env: Env = {}): Env {
  const out: Record<string, string | undefined> = {};
  for (const k of config.portal.master_keys) if (k.env !== undefined) out[k.env] = env[k.env];
  if (config.tracking.key?.env !== undefined) out[config.tracking.key.env] = env[config.tracking.key.env];
  return out;
}
