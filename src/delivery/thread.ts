// The delivery worker on a thread of its own. Ingress and delivery share nothing
// but the store, so the event loop that answers SMTP clients never runs a TLS
// handshake, a policy decision or an encryption of the delivery side: accept
// latency stays flat while the queue drains, and each side's garbage collection
// pauses only itself. The thread builds its own policy and protection from the
// config, reaches the store thread through a port of its own, and writes its log
// lines to the relay's log file descriptor (stdout) itself — or, when the relay
// logs to a stream (tests), sends them here to be written there.
import { pino } from 'pino';
import type { Worker } from 'node:worker_threads';
import type { Config } from '../config/schema.ts';
import type { Logger } from '../log.ts';
import type { ThreadedSqliteStore } from '../store/sqlite/threaded-store.ts';
import { tsxWorker } from '../tsx-worker.ts';

export type ToDeliveryThread = { type: 'kick' } | { type: 'reload'; config: Config } | { type: 'stop'; graceMs: number };
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
  /** Stops claiming, waits up to `graceMs` for attempts in flight, and ends the thread. */
  stop(graceMs: number): Promise<void>;
}

const ENTRY = new URL('./thread-entry.ts', import.meta.url);
/** After `stopped`, how long the thread may take to end by itself before it is terminated, in ms. */
const EXIT_WAIT_MS = 2000;
/** A thread that died is started again after this long: leases keep its claims safe meanwhile. */
const RESTART_DELAY_MS = 1000;

/** Starts the thread; resolves once it runs, rejects with its reason when it cannot start. */
export async function startDeliveryThread(deps: { config: Config; store: ThreadedSqliteStore; logger: Logger; logFd?: number | undefined }): Promise<DeliveryThread> {
  const { store, logger } = deps;
  let config = deps.config;
  // Lines from the thread are already JSON: they go to the relay's own destination as they are.
  const destination = (logger as unknown as Record<symbol, { write(line: string): void }>)[pino.symbols.streamSym]!;
  let stopping = false;
  /** Answers the thread owes: one waiter per kind of request at a time. */
  const waiting = new Map<string, (m: FromDeliveryThread) => void>();
  const expect = (type: string) => new Promise<FromDeliveryThread>((resolve) => waiting.set(type, resolve));

  let worker = await launch();

  async function launch(): Promise<Worker> {
    const storePort = store.connect();
    const w = tsxWorker(ENTRY, { workerData: { config, storePort, logFd: deps.logFd }, transferList: [storePort] });
    w.on('message', (m: FromDeliveryThread) => {
      if (m.type === 'log') return destination.write(m.line);
      const answer = m.type === 'reload-failed' ? 'reloaded' : m.type === 'failed' ? 'ready' : m.type;
      const resolve = waiting.get(answer);
      waiting.delete(answer);
      resolve?.(m);
    });
    const started = new Promise<void>((resolve, reject) => {
      waiting.set('ready', (m) => (m.type === 'ready' ? resolve() : reject(new Error((m as { message: string }).message))));
      w.once('error', reject);
      w.once('exit', (code) => reject(new Error(`delivery thread exited during start (code ${code})`)));
    });
    try {
      await started;
    } catch (err) {
      await w.terminate();
      throw err;
    }
    w.on('error', (err) => {
      logger.error({ event: 'delivery.error', err }, 'delivery thread failed; starting it again');
      if (stopping) return;
      setTimeout(() => {
        if (stopping) return;
        launch().then(
          (next) => (worker = next),
          (e: unknown) => logger.fatal({ event: 'delivery.error', err: e }, 'delivery thread cannot start again: nothing will be delivered until a restart'),
        );
      }, RESTART_DELAY_MS).unref();
    });
    return w;
  }

  const send = (m: ToDeliveryThread) => worker.postMessage(m);

  return {
    kick() {
      if (!stopping) send({ type: 'kick' });
    },
    async reload(next) {
      const answer = expect('reloaded');
      send({ type: 'reload', config: next });
      const m = await answer;
      if (m.type === 'reload-failed') throw new Error(m.message);
      config = next;
    },
    async stop(graceMs) {
      stopping = true;
      const w = worker;
      const exited = new Promise<void>((resolve) => w.once('exit', () => resolve()));
      const stopped = expect('stopped');
      send({ type: 'stop', graceMs });
      // The thread answers within its grace; a thread that hangs beyond it is ended.
      await Promise.race([stopped, exited, new Promise((resolve) => setTimeout(resolve, graceMs + EXIT_WAIT_MS))]);
      const timer = setTimeout(() => void w.terminate(), EXIT_WAIT_MS);
      await exited;
      clearTimeout(timer);
    },
  };
}
