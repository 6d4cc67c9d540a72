// The SQLite store's own thread. The relay's event loop never waits for SQLite:
// every Store call is a message to this thread, which runs it on its connection
// and answers. While one commit waits for its fsync, new writes (enqueues, finishes)
// queue up behind it and share the next commit (group commit without any timer), and SQLite's
// WAL checkpoints stall only this thread, never an SMTP session.
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import { releasedMessageBytes } from '../../gc-hint.ts';
import { SqliteStore } from './sqlite-store.ts';
import { loadBodyKeyring } from '../../portal/master-keys.ts';
import { transferable, type StoreRequest, type StoreResponse, type StoreWorkerData } from './threaded-store.ts';

const port = parentPort!;
let store: SqliteStore;
try {
  const data = workerData as StoreWorkerData;
  store = new SqliteStore(data.path, {
    bodyKeys: data.bodyKeys ? loadBodyKeyring({ driver: 'sqlite', path: data.path, encryption: data.bodyKeys.encryption }, data.bodyKeys.env) : null,
    checkpointsApart: true,
    countReportsEveryMs: 1000,
    onError: (message) => port.postMessage({ log: message }),
  });
  port.postMessage({ ready: true });
} catch (err) {
  port.postMessage({ fatal: (err as Error).message });
  throw err;
}

/** Serves Store calls arriving on `from`; only the owning thread (parentPort) may close the store. */
function serve(from: MessagePort, owner: boolean): void {
  from.on('message', (req: StoreRequest | { connect: MessagePort }) => {
    if ('connect' in req) return serve(req.connect, false);
    // A body read for delivery moves to the asking thread rather than being copied (nothing here keeps it).
    const reply = (res: Omit<StoreResponse, 'id'>) =>
      from.postMessage({ id: req.id, ...res }, req.op === 'readBody' && res.value instanceof Uint8Array ? transferable(res.value) : []);
    if (req.op === 'close' && !owner) return reply({ error: { name: 'Error', message: 'only the owning thread closes the store' } });
    const method = store[req.op] as (...args: unknown[]) => Promise<unknown>;
    method.apply(store, req.args).then(
      (value) => {
        reply({ value });
        releasedMessageBytes(messageBytes(req, value));
        if (req.op === 'close') port.close();
      },
      (err: Error & { code?: string }) => reply({ error: { name: err.name, message: err.message, code: err.code } }),
    );
  });
}
serve(port, true);

/** Message bytes a call carried in or out: done with here once it is answered (gc-hint.ts). */
function messageBytes(req: StoreRequest, value: unknown): number {
  const length = (v: unknown) => (v instanceof Uint8Array ? v.byteLength : 0);
  switch (req.op) {
    case 'enqueue':
      return length((req.args[0] as { body?: unknown }).body);
    case 'stageBodyPart':
      return length(req.args[2]);
    case 'readBody':
      return length(value);
    default:
      return 0;
  }
}
