/**
 * A delivery-thread entry for supervising tests (src/delivery/thread.ts): it speaks
 * the thread protocol over a real store port, and its first kick crashes the
 * thread with an uncaught error — once per marker file (env
 * SEALRELAY_TEST_CRASH_MARKER) — so a test can watch the relay start a new one.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import type { FromDeliveryThread, ToDeliveryThread } from '../../src/delivery/thread.ts';
import { ThreadedSqliteStore } from '../../src/store/sqlite/threaded-store.ts';

const relay = parentPort!;
const post = (m: FromDeliveryThread) => relay.postMessage(m);
const log = (event: string) => post({ type: 'log', line: `${JSON.stringify({ event })}\n` });
const store = ThreadedSqliteStore.attach((workerData as { storePort: MessagePort }).storePort);
const marker = process.env.SEALRELAY_TEST_CRASH_MARKER!;

// A real round trip through the store port before saying ready.
await store.queueStats();
post({ type: 'ready' });

relay.on('message', (m: ToDeliveryThread) => {
  if (m.type === 'kick') {
    if (!existsSync(marker)) {
      writeFileSync(marker, 'crashed once');
      throw new Error('simulated delivery thread crash');
    }
    log('fixture.kicked');
  } else if (m.type === 'reload') {
    post({ type: 'reloaded' });
  } else {
    void store.close().then(() => {
      post({ type: 'stopped' });
      relay.close();
    });
  }
});
