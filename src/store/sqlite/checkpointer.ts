// WAL checkpoints on a thread of their own, at quiet moments.
//
// SQLite's automatic checkpoint runs inside whichever commit crosses the WAL
// threshold: it copies pages into the database file and fsyncs it, and the commit
// — with every enqueue waiting behind it for its 250 — stalls for tens of
// milliseconds. The store turns the automatic checkpoint off on its connection;
// this thread checkpoints PASSIVE-ly (never blocking writers) on a second
// connection when the store has been quiet for a poll (no commit seen through
// PRAGMA data_version), or at the latest every CHECKPOINT_MAX_INTERVAL_MS under
// sustained load, which bounds the WAL. At the end it truncates the WAL.
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

/** How often the thread looks for a quiet moment, in ms. */
const QUIET_POLL_MS = 250;
/** Longest time between checkpoints under sustained load, in ms (WAL ≈ this × write rate). */
const CHECKPOINT_MAX_INTERVAL_MS = 10_000;

// Plain CommonJS: the thread needs no TypeScript loader.
const SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.path);
db.pragma('busy_timeout = 5000');
const checkpoint = (mode) => {
  try { db.pragma('wal_checkpoint(' + mode + ')'); } catch (err) { parentPort.postMessage({ error: String((err && err.message) || err) }); }
};
let seen = db.pragma('data_version', { simple: true });
// Whatever was written before this thread started is pending too.
let pending = true;
let last = Date.now();
const timer = setInterval(() => {
  const version = db.pragma('data_version', { simple: true });
  const quiet = version === seen;
  seen = version;
  if (!quiet) pending = true;
  if (pending && (quiet || Date.now() - last >= workerData.maxIntervalMs)) {
    checkpoint('PASSIVE');
    pending = false;
    last = Date.now();
  }
}, workerData.pollMs);
parentPort.on('message', () => {
  clearInterval(timer);
  checkpoint('TRUNCATE');
  db.close();
  parentPort.postMessage({ stopped: true });
});
`;

export class Checkpointer {
  private readonly worker: Worker;

  constructor(path: string, onError: (message: string) => void) {
    const driver = createRequire(import.meta.url).resolve('better-sqlite3');
    this.worker = new Worker(SOURCE, { eval: true, workerData: { driver, path, pollMs: QUIET_POLL_MS, maxIntervalMs: CHECKPOINT_MAX_INTERVAL_MS } });
    this.worker.on('message', (msg: { error?: string }) => msg.error && onError(`background checkpoint failed: ${msg.error}`));
    this.worker.on('error', (err) => onError(`background checkpoint failed: ${err.message}`));
    // Checkpoints must never keep a finished process alive.
    this.worker.unref();
  }

  /** A last checkpoint that empties the WAL; call it after the store's own connection closed. */
  async stop(): Promise<void> {
    const done = new Promise<void>((resolve) => {
      this.worker.on('message', (msg: { stopped?: boolean }) => msg.stopped && resolve());
      this.worker.once('exit', () => resolve());
    });
    this.worker.postMessage('stop');
    await done;
    await this.worker.terminate();
  }
}
