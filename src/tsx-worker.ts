// Worker threads run TypeScript like the rest of the relay: the thread registers
// tsx first, then loads its entry module (store-worker.ts, delivery/thread-entry.ts).
import { Worker, type WorkerOptions } from 'node:worker_threads';

// An eval'd worker resolves bare names from the working directory, which need not be
// ours: tsx is located here and handed over as a URL.
const BOOTSTRAP = `const { workerData } = require('node:worker_threads'); import(workerData.tsx).then(({ register }) => { register(); return import(workerData.entry); });`;
const TSX_API = import.meta.resolve('tsx/esm/api');

/** A thread running the module at `entry` (a file URL); `workerData` reaches it with `entry` added. */
export function tsxWorker(entry: URL, options: Omit<WorkerOptions, 'eval'> & { workerData?: Record<string, unknown> } = {}): Worker {
  return new Worker(BOOTSTRAP, { ...options, eval: true, workerData: { ...options.workerData, entry: entry.href, tsx: TSX_API } });
}
