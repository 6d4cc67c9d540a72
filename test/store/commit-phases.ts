// Child process of sqlite-fsync.test.ts, run under strace: one store write per
// phase, each between two marker syscalls (an access() of a path that does not
// exist), so the trace shows which fsyncs each write made before it resolved.
// argv: <store file> <in-process | threaded>
import { accessSync } from 'node:fs';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { ThreadedSqliteStore } from '../../src/store/sqlite/threaded-store.ts';
import type { QueueItem, Store } from '../../src/store/store.ts';
import { message, record } from './contract.ts';

/** sqlite-fsync.test.ts reads the phases by this prefix. */
const MARK_DIR = '/sealrelay-commit-phase';

function mark(name: string): void {
  try {
    accessSync(`${MARK_DIR}/${name}`);
  } catch {
    // The path never exists: the syscall in the trace is the point.
  }
}

async function phase(name: string, write: () => Promise<unknown>): Promise<void> {
  mark(`${name}/begin`);
  await write();
  mark(`${name}/end`);
}

const [path, form] = process.argv.slice(2);
if (!path || (form !== 'in-process' && form !== 'threaded')) throw new Error('usage: commit-phases.ts <store file> <in-process|threaded>');
const store: Store = form === 'threaded' ? await ThreadedSqliteStore.open(path) : new SqliteStore(path);

const first = message({ recipients: ['a@one.test', 'b@one.test'] });
await phase('enqueue', () => store.enqueue(first));
let claimed: QueueItem[] = [];
await phase('claim', async () => (claimed = await store.claim({ owner: 'w', limit: 10, leaseMs: 60_000 })));
const [a, b] = claimed;
await phase('finish-delivered', () => store.finish([record(a!)], [{ queueId: a!.queueId, seq: a!.seq, outcome: 'delivered', error: null }]));
const failed = { code: 550, enhanced: '5.1.1', response: '550 5.1.1 unknown user' };
const bounce = message({ sender: '', recipients: [first.sender] });
await phase('finish-with-bounce', () =>
  store.finish([record(b!, { outcome: 'bounced', smtp: failed })], [{ queueId: b!.queueId, seq: b!.seq, outcome: 'bounced', error: failed.response }], [bounce]),
);
// A large message: its parts are written ahead (NORMAL), the enqueue naming them is the FULL commit.
const part = Buffer.alloc(64 * 1024, 'p');
const large = message({ staged: { parts: 1, bytes: part.length } });
await phase('stage-part', () => store.stageBodyPart(large.queueId, 1, part));
await phase('enqueue-staged', () => store.enqueue(large));
await phase('operator-hold', () => store.hold(large.queueId, 'test'));
await store.close();
