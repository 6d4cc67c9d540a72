// load-thread: the load generator on a thread of its own. The bench's main thread
// samples /proc (memory of the relay's process tree every 200 ms, CPU, the
// machine) with synchronous reads that take milliseconds; on the load
// generator's event loop every such read would be added to the accept latency
// of each message in flight, and at a few hundred msgs/s those stalls alone
// decide a p99. Here the sessions keep their own event loop and clock.
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { tsxWorker } from '../src/tsx-worker.ts';
import { runLoad, type LoadOptions, type LoadResult } from './load.ts';

/** runLoad on a new thread; the thread ends with the load. */
export function runLoadOnThread(opts: LoadOptions): Promise<LoadResult> {
  const worker = tsxWorker(new URL(import.meta.url), { workerData: { load: opts } });
  return new Promise((resolve, reject) => {
    let settled = false;
    worker.once('message', (result: LoadResult) => {
      settled = true;
      resolve(result);
    });
    worker.once('error', (err) => {
      settled = true;
      reject(err);
    });
    worker.once('exit', (code) => {
      if (!settled) reject(new Error(`load generator thread exited with code ${code} before reporting`));
    });
  });
}

if (!isMainThread && (workerData as { load?: LoadOptions } | null)?.load) {
  const result = await runLoad((workerData as { load: LoadOptions }).load);
  parentPort!.postMessage(result);
}
