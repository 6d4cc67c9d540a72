// Worker threads run TypeScript like the rest of the relay: the thread registers
// tsx first, then loads its entry module (store-worker.ts, delivery/thread-entry.ts).
import { Worker, type WorkerOptions } from 'node:worker_threads';

const BOOTSTRAP = `import('tsx/esm/api').then(({ register }) => { register(); return import(require('node:worker_threads').workerData.entry); });`;

/** A thread running the module at `entry` (a file URL); `workerData` reaches it with `entry` added. */
export function tsxWorker(entry: URL, options: Omit<WorkerOptions, 'eval'> & { workerData?: Record<string, unknown> } = {}): Worker {
  return new Worker(BOOTSTRAP, { ...options, eval: true, workerData: { ...options.workerData, entry: entry.href } });
}
