// The SQLite store's own thread. The relay's event loop never waits for SQLite:
// every Store call is a message to this thread, which runs it on its connection
// and answers. While one commit waits for its fsync, new enqueues queue up behind
// it and share the next commit (group commit without any timer), and SQLite's
// WAL checkpoints stall only this thread, never an SMTP session.
import { parentPort, workerData } from 'node:worker_threads';
import { SqliteStore } from './sqlite-store.ts';
import type { StoreRequest, StoreResponse } from './threaded-store.ts';

const port = parentPort!;
let store: SqliteStore;
try {
  store = new SqliteStore((workerData as { path: string }).path, {
    checkpointsApart: true,
    onError: (message) => port.postMessage({ log: `background checkpoint failed: ${message}` }),
  });
  port.postMessage({ ready: true });
} catch (err) {
  port.postMessage({ fatal: (err as Error).message });
  throw err;
}

port.on('message', (req: StoreRequest) => {
  const reply = (res: Omit<StoreResponse, 'id'>) => port.postMessage({ id: req.id, ...res });
  const method = store[req.op] as (...args: unknown[]) => Promise<unknown>;
  method.apply(store, req.args).then(
    (value) => {
      reply({ value });
      if (req.op === 'close') port.close();
    },
    (err: Error) => reply({ error: { name: err.name, message: err.message } }),
  );
});
