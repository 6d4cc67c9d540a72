// What a portal item leaves on disk, read from the real SQLite files: the database
// and its write-ahead log hold no marker from the message's subject, body or
// attachment name (only ciphertext), whether the item was stored alone or in
// finish's transaction; and once an item is recalled or expires, neither its
// ciphertext nor its wrapped key is left in the file for whoever later has it and a
// master key (secure_delete zeroes the freed pages).
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MARKERS, markedMessage } from '../helpers/marked-message.ts';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { Keyring } from '../../src/portal/master-keys.ts';
import { openPortalItem, sealPortalItem, type PortalItemFacts } from '../../src/portal/vault.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { message as queued, portalFacts, record } from '../store/contract.ts';

/** A multipart message as an application would send lab results. */
const MESSAGE = Buffer.from(markedMessage({ from: 'Lab <lab@clinic.example>', to: 'Pat <pat@patient.example>', attachment: randomBytes(2250) }));

const keyring = new Keyring([{ id: 'k1', key: randomBytes(32) }], 'k1');
let dir: string;
let path: string;
let store: SqliteStore | null = null;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'sealrelay-at-rest-'));
  path = join(dir, 'sealrelay.db');
});
afterEach(async () => {
  await store?.close();
  store = null;
});

const facts = (over: Partial<PortalItemFacts> = {}): PortalItemFacts => ({
  queueId: 'QAREST',
  seq: 0,
  messageId: '<rest@clinic.example>',
  sender: 'lab@clinic.example',
  recipient: 'pat@patient.example',
  createdAt: Date.now(),
  expiresAt: Date.now() + 86_400_000,
  ...over,
});

const fileBytes = (file: string) => (existsSync(file) ? readFileSync(file) : Buffer.alloc(0));
/** Which of `needles` occur in the database file or its WAL, as "file: needle". */
function found(needles: readonly (string | Buffer)[]): string[] {
  const files = { db: fileBytes(path), wal: fileBytes(`${path}-wal`) };
  return Object.entries(files).flatMap(([name, bytes]) =>
    needles.filter((n) => bytes.includes(typeof n === 'string' ? Buffer.from(n) : n)).map((n) => `${name}: ${typeof n === 'string' ? n : n.toString('hex')}`),
  );
}

it('the database and its WAL hold no subject, body or attachment-name marker, only ciphertext', async () => {
  store = new SqliteStore(path);
  const plain = sealPortalItem(keyring, facts(), MESSAGE);
  const linked = sealPortalItem(keyring, facts({ seq: 1, recipient: 'kim@patient.example' }), MESSAGE, { keyInLink: true });
  await store.putPortalItem(plain.item);
  await store.putPortalItem(linked.item);
  // As delivery will: the item in the transaction that settles its recipient.
  const m = queued({ recipients: ['lee@patient.example'], body: Buffer.from('Subject: placeholder\r\n\r\nnothing here\r\n'), subject: 'placeholder' });
  await store.enqueue(m);
  const [claimed] = await store.claim({ owner: 'w', limit: 1, leaseMs: 60_000 });
  const inFinish = sealPortalItem(keyring, facts({ queueId: m.queueId, recipient: 'lee@patient.example' }), MESSAGE);
  await store.finish([record(claimed!, { outcome: 'portal-notified', method: 'portal', portal: portalFacts(inFinish.item.id, 'QNOTICE') })], [{ queueId: m.queueId, seq: 0, outcome: 'portal-notified', error: null }], [], [inFinish.item]);

  // Everything so far sits in the WAL (SQLite has not checkpointed it yet).
  expect(statSync(`${path}-wal`).size).toBeGreaterThan(3 * MESSAGE.length);
  expect(found(Object.values(MARKERS))).toEqual([]);
  // The grep does find what is stored in the clear (metadata), so an empty answer means something.
  expect(found(['pat@patient.example'])).toContain('wal: pat@patient.example');
  // And the items are really there: they open.
  expect(openPortalItem(keyring, (await store.getPortalItem(inFinish.item.id))!).equals(MESSAGE)).toBe(true);
  expect(openPortalItem(keyring, (await store.getPortalItem(linked.item.id))!, linked.linkKey).equals(MESSAGE)).toBe(true);

  // Checkpointed into the database file at close: still none.
  await store.close();
  store = null;
  expect(existsSync(`${path}-wal`) ? statSync(`${path}-wal`).size : 0).toBe(0);
  expect(statSync(path).size).toBeGreaterThan(3 * MESSAGE.length);
  expect(found(Object.values(MARKERS))).toEqual([]);
  expect(found(['pat@patient.example'])).toContain('db: pat@patient.example');
});

it('recall and expiry leave neither ciphertext nor wrapped key in the database file', async () => {
  store = new SqliteStore(path);
  const recalled = sealPortalItem(keyring, facts({ queueId: 'QRECALL' }), MESSAGE);
  const expired = sealPortalItem(keyring, facts({ queueId: 'QEXPIRE', createdAt: Date.now() - 2000, expiresAt: Date.now() - 1000 }), MESSAGE);
  const kept = sealPortalItem(keyring, facts({ queueId: 'QKEPT' }), MESSAGE);
  for (const i of [recalled, expired, kept]) await store.putPortalItem(i.item);
  // Written through to the database file first, as a long-running relay's checkpoints do.
  await store.close();
  const slices = (i: typeof recalled) => [i.item.sealed.content.subarray(100, 132), i.item.sealed.content.subarray(-32), i.item.sealed.wrappedKey.subarray(0, 32)];
  expect(found([...slices(recalled), ...slices(expired)])).toHaveLength(6);

  store = new SqliteStore(path);
  expect(await store.recallPortalItems('QRECALL', 'alice')).toHaveLength(1);
  expect(await store.expirePortalItems(Date.now(), 10)).toBe(1);
  await store.close();
  store = null;
  expect(found([...slices(recalled), ...slices(expired)])).toEqual([]);
  // The item left alone is still there, whole.
  expect(found(slices(kept))).toHaveLength(3);
});
