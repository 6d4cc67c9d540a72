// Queued bodies encrypted at rest (store.encryption, store/sqlite/body-cipher.ts):
// with a key, no byte of a queued message is found in the database file or its WAL,
// every part reads back exactly, a part moved or altered does not open, older keys
// keep their parts readable while listed, and the relay will not start on bodies
// under a key it was not given. Without a key the same bytes are found (the control).
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log.ts';
import { formatMasterKey, generateMasterKey, Keyring } from '../../src/portal/master-keys.ts';
import { startRelay } from '../../src/relay.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { MARKERS, markedMessage } from '../helpers/marked-message.ts';
import { allocLoopbackIp, startMx } from '../helpers/mx.ts';
import { startTestRelay, submit, testConfig } from '../helpers/relay.ts';
import { message } from './contract.ts';

const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const tempDb = () => join(mkdtempSync(join(tmpdir(), 'sealrelay-bodies-')), 'sealrelay.db');
const fileBytes = (file: string) => (existsSync(file) ? readFileSync(file) : Buffer.alloc(0));
/** Whether `marker` is anywhere in the database file or its WAL. */
const onDisk = (path: string, marker: string) => fileBytes(path).includes(marker) || fileBytes(`${path}-wal`).includes(marker);
const keyring = (keys: Record<string, Buffer>, current: string) => new Keyring(Object.entries(keys).map(([id, key]) => ({ id, key })), current);
const MARK = 'QUEUEDBODYMARKER3e9d';
const body = (n: number) => Buffer.from(`Subject: x\r\n\r\n${`${MARK} line ${n}\r\n`.repeat(2000)}`);

describe('the store with a body key', () => {
  it('a whole message and one staged in parts read back exactly; neither is in the file or the WAL; the parts name their key', async () => {
    const path = tempDb();
    const s = new SqliteStore(path, { bodyKeys: keyring({ q1: generateMasterKey() }, 'q1') });
    cleanups.push(() => s.close());
    const whole = message({ body: body(1) });
    await s.enqueue(whole);
    const staged = message({ body: body(2) });
    const parts = [body(3), body(4)];
    for (const [i, p] of parts.entries()) await s.stageBodyPart(staged.queueId, i + 1, p);
    await s.enqueue({ ...staged, staged: { parts: 2, bytes: parts[0]!.length + parts[1]!.length } });

    expect(await s.readBody(whole.queueId)).toEqual(body(1));
    expect(await s.readBody(staged.queueId)).toEqual(Buffer.concat([body(2), ...parts]));
    expect(onDisk(path, MARK)).toBe(false);
    expect(await s.bodyKeysInUse()).toEqual([{ keyId: 'q1', parts: 4 }]);
  });

  it('a part moved to another place or message, or one changed byte, does not open', async () => {
    const path = tempDb();
    const key = generateMasterKey();
    const s = new SqliteStore(path, { bodyKeys: keyring({ q1: key }, 'q1') });
    cleanups.push(() => s.close());
    const a = message({ body: body(1) });
    const b = message({ body: body(2) });
    await s.enqueue(a);
    await s.enqueue(b);
    await s.close();
    const raw = new Database(path);
    const dataOf = (id: string) => raw.prepare('SELECT data, nonce FROM body_parts WHERE queue_id = ?').get(id) as { data: Buffer; nonce: Buffer };
    const fromB = dataOf(b.queueId);
    raw.prepare('UPDATE body_parts SET data = ?, nonce = ? WHERE queue_id = ?').run(fromB.data, fromB.nonce, a.queueId);
    const flipped = Buffer.from(fromB.data);
    flipped[100]! ^= 1;
    raw.prepare('UPDATE body_parts SET data = ? WHERE queue_id = ?').run(flipped, b.queueId);
    raw.close();
    const untouched = message({ body: body(3) });
    const again = new SqliteStore(path, { bodyKeys: keyring({ q1: key }, 'q1') });
    cleanups.push(() => again.close());
    await again.enqueue(untouched);
    expect(await again.readBody(untouched.queueId)).toEqual(body(3));
    await expect(again.readBody(a.queueId)).rejects.toThrow(/not authentic/);
    await expect(again.readBody(b.queueId)).rejects.toThrow(/not authentic/);
  });

  it('rotation: parts under the old key stay readable while it is listed; once it is not, reading them says which key is missing', async () => {
    const path = tempDb();
    const k1 = generateMasterKey();
    const k2 = generateMasterKey();
    const first = new SqliteStore(path, { bodyKeys: keyring({ k1 }, 'k1') });
    const m1 = message({ body: body(1) });
    await first.enqueue(m1);
    await first.close();
    const second = new SqliteStore(path, { bodyKeys: keyring({ k1, k2 }, 'k2') });
    const m2 = message({ body: body(2) });
    await second.enqueue(m2);
    expect(await second.readBody(m1.queueId)).toEqual(body(1));
    expect(await second.bodyKeysInUse()).toEqual([{ keyId: 'k1', parts: 1 }, { keyId: 'k2', parts: 1 }]);
    await second.close();
    const third = new SqliteStore(path, { bodyKeys: keyring({ k2 }, 'k2') });
    cleanups.push(() => third.close());
    expect(await third.readBody(m2.queueId)).toEqual(body(2));
    await expect(third.readBody(m1.queueId)).rejects.toThrow(`${m1.queueId}: its body is encrypted with key k1, which store.encryption.keys does not list`);
  });

  it('the control: without a key the body is on disk as sent; turning a key on later keeps it readable', async () => {
    const path = tempDb();
    const plain = new SqliteStore(path);
    const m = message({ body: body(1) });
    await plain.enqueue(m);
    expect(onDisk(path, MARK)).toBe(true);
    await plain.close();
    const keyed = new SqliteStore(path, { bodyKeys: keyring({ q1: generateMasterKey() }, 'q1') });
    cleanups.push(() => keyed.close());
    expect(await keyed.readBody(m.queueId)).toEqual(body(1));
    expect(await keyed.bodyKeysInUse()).toEqual([{ keyId: null, parts: 1 }]);
  });
});

describe('the relay with store.encryption', () => {
  it('mail held in the queue is nowhere in the database or WAL; after a restart with the key it is delivered intact; without the key the relay will not start', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sealrelay-bodykeys-'));
    const keyFile = join(dir, 'queue.key');
    writeFileSync(keyFile, formatMasterKey(generateMasterKey()), { mode: 0o600 });
    const storePath = join(dir, 'sealrelay.db');
    const encryption = { keys: [{ id: 'q2026', env: 'SEALRELAY_QUEUE_KEY' }], current_key: 'q2026' };
    const env = { SEALRELAY_QUEUE_KEY: readFileSync(keyFile, 'utf8') };
    const dead = allocLoopbackIp();
    const held = testConfig({ store: { path: storePath, encryption }, delivery: { routes: { 'clinic.test': `${dead}:25` } } });
    const relay = await startRelay({ config: held, logger: createLogger('silent'), env });
    const port = relay.listeners[0]!.port;
    await submit({ port, from: 'lab@hospital.test', to: ['pat@clinic.test'], body: markedMessage({ from: 'lab@hospital.test', to: 'pat@clinic.test', attachment: Buffer.from(`%PDF ${MARKERS.attachment}`) }) });
    expect(onDisk(storePath, MARKERS.body)).toBe(false);
    expect(onDisk(storePath, MARKERS.attachment)).toBe(false);
    await relay.close();

    // A relay given no key for those bodies refuses to start, naming the key.
    await expect(startRelay({ config: testConfig({ store: { path: storePath } }), logger: createLogger('silent') })).rejects.toThrow(
      /queued message bodies are encrypted with key\(s\) store\.encryption\.keys does not list: q2026 \(1 part\(s\)\)/,
    );

    const mx = await startMx('tls13', { name: 'mx.clinic.test' });
    cleanups.push(() => mx.close());
    const again = await startTestRelay(testConfig({ store: { path: storePath, encryption: { keys: [{ id: 'q2026', file: keyFile }], current_key: 'q2026' } }, delivery: { routes: { 'clinic.test': `127.0.0.1:${mx.port}` } } }));
    cleanups.push(() => again.close());
    const [got] = await mx.waitFor(1, 20_000);
    expect(got!.raw.toString()).toContain(MARKERS.body);
  }, 60_000);
});
