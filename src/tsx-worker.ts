// Worker threads run what the rest of the relay runs: the compiled JavaScript in
// dist/ (a plain Worker), or, run from the sources (tests, development), TypeScript
// through tsx, which the thread registers before it loads its entry module.
import { Worker, type WorkerOptions } from 'node:worker_threads';

// An eval'd worker resolves bare names from the working directory, which need not be
// ours: tsx is located here and handed over as a URL.
const BOOTSTRAP = `const { workerData } = require('node:worker_threads'); import(workerData.tsx).then(({ register }) => { register(); return import(workerData.entry); });`;

/** A thread running the module at `entry` (a file URL); `workerData` reaches it with `entry` added. */
export function tsxWorker(entry: URL, options: Omit<WorkerOptions, 'eval'> & { workerData?: Record<string, unknown> } = {}): Worker {
  if (!entry.pathname.endsWith('.ts')) return new Worker(entry, { ...options, workerData: { ...options.workerData, entry: entry.href } });
  return new Worker(BOOTSTRAP, { ...options, eval: true, workerData: { ...options.workerData, entry: entry.href, tsx: import.meta.resolve('tsx/esm/api') } });
}

/** The module `name` (without extension) beside `base`, in the form `base` runs as: .ts from the sources, .js compiled. */
export function siblingModule(name: string, base: string): URL {
  return new URL(`./${name}${base.endsWith('.ts') ? '.ts' : '.js'}`, base);
}
