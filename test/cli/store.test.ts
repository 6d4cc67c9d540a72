// `sealrelay store keys`: parts per body key. `sealrelay store backup FILE`: a
// consistent copy made while the relay runs and
// takes mail, mode 0600, checked before it is named; restoring it (putting it in
// place of store.path) gives a relay that delivers what was queued.
import { mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, expect, it } from 'vitest';
import { allocLoopbackIp, startMx, type StartedMx } from '../helpers/mx.ts';
import { writeConfigFile } from '../helpers/relay-process.ts';
import { queueIdOf, startTestRelay, submit, testConfig, type TestRelay } from '../helpers/relay.ts';
import { formatMasterKey, generateMasterKey, Keyring } from '../../src/portal/master-keys.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { message } from '../store/contract.ts';
import { runCli } from './harness.ts';

const open: { close(): Promise<void> }[] = [];
afterEach(async () => {
  for (const o of open.splice(0).reverse()) await o.close();
});

it('copies the store while the relay takes mail; the copy is 0600, whole, and a relay started on it delivers what it held', async () => {
  // Mail for held.test waits in the queue: its MX address has nothing listening.
  const dead = allocLoopbackIp();
  const relay: TestRelay = await startTestRelay(testConfig({ delivery: { routes: { 'held.test': `${dead}:25` } } }));
  open.push(relay);
  const configFile = writeConfigFile(mkdtempSync(join(tmpdir(), 'sealrelay-backup-cfg-')), relay.config);
  const before = [];
  for (let i = 0; i < 5; i++) before.push(queueIdOf(await submit({ port: relay.port, from: 'lab@hospital.test', to: [`p${i}@held.test`] })));

  // More mail arrives while the backup runs.
  const during = Promise.all(Array.from({ length: 5 }, (_, i) => submit({ port: relay.port, from: 'lab@hospital.test', to: [`q${i}@held.test`] })));
  const target = join(mkdtempSync(join(tmpdir(), 'sealrelay-backup-')), 'copy.db');
  const res = await runCli(['-c', configFile, 'store', 'backup', target]);
  await during;
  expect(res.stderr).toBe('');
  expect(res.code).toBe(0);
  expect(res.stdout).toMatch(new RegExp(`^backup written to ${target}: schema \\d+, \\d+ queued message\\(s\\)`));
  expect(statSync(target).mode & 0o777).toBe(0o600);

  const copy = new Database(target, { readonly: true });
  expect(copy.pragma('integrity_check', { simple: true })).toBe('ok');
  const queued = copy.prepare('SELECT queue_id FROM messages').pluck().all() as string[];
  const waiting = copy.prepare('SELECT recipient FROM recipients').pluck().all() as string[];
  copy.close();
  expect(queued).toEqual(expect.arrayContaining(before));
  await relay.close();
  open.splice(0);

  // Restore: the copy in place of store.path, the MX now reachable.
  const mx: StartedMx = await startMx('tls13', { name: 'mx.held.test' });
  open.push(mx);
  const restoredPath = join(mkdtempSync(join(tmpdir(), 'sealrelay-restored-')), 'sealrelay.db');
  writeFileSync(restoredPath, readFileSync(target));
  const restored = await startTestRelay(testConfig({ store: { path: restoredPath }, delivery: { routes: { 'held.test': `127.0.0.1:${mx.port}` } } }));
  open.push(restored);
  const got = await mx.waitFor(queued.length, 20_000);
  expect(got.map((m) => m.envelope.to[0]).sort()).toEqual(waiting.sort());
  expect(waiting).toEqual(expect.arrayContaining(before.map((_, i) => `p${i}@held.test`)));
}, 60_000);

it('never overwrites: an existing file is refused and left as it was; no partial file is left behind', async () => {
  const relay = await startTestRelay(testConfig());
  open.push(relay);
  const dir = mkdtempSync(join(tmpdir(), 'sealrelay-backup-'));
  const configFile = writeConfigFile(mkdtempSync(join(tmpdir(), 'sealrelay-backup-cfg-')), relay.config);
  const target = join(dir, 'copy.db');
  writeFileSync(target, 'precious');
  const res = await runCli(['-c', configFile, 'store', 'backup', target]);
  expect(res.code).toBe(1);
  expect(res.stderr).toContain('exists; backups never overwrite');
  expect(readFileSync(target, 'utf8')).toBe('precious');

  const second = await runCli(['-c', configFile, 'store', 'backup', relay.config.store.path]);
  expect(second.code).toBe(1);
  expect(readdirSync(dir)).toEqual(['copy.db']);
});

it('store keys: parts under each key, the current one named, one no longer listed flagged, bodies in the clear counted', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sealrelay-storekeys-'));
  const storePath = join(dir, 'sealrelay.db');
  const k1 = generateMasterKey();
  const k2 = generateMasterKey();
  const plain = new SqliteStore(storePath);
  await plain.enqueue(message({ body: Buffer.from('Subject: a\r\n\r\nplain\r\n') }));
  await plain.close();
  const old = new SqliteStore(storePath, { bodyKeys: new Keyring([{ id: 'old', key: k1 }], 'old') });
  await old.enqueue(message());
  await old.close();
  const current = new SqliteStore(storePath, { bodyKeys: new Keyring([{ id: 'new', key: k2 }], 'new') });
  await current.enqueue(message());
  await current.enqueue(message());
  await current.close();
  writeFileSync(join(dir, 'new.key'), formatMasterKey(k2), { mode: 0o600 });
  const config = testConfig({ store: { path: storePath, encryption: { keys: [{ id: 'new', file: join(dir, 'new.key') }], current_key: 'new' } } });
  const res = await runCli(['-c', writeConfigFile(dir, config), 'store', 'keys']);
  expect(res.code).toBe(0);
  expect(res.stdout.split('\n').filter(Boolean)).toEqual([
    expect.stringMatching(/^\(none\) +1 part\(s\) {2}in the clear/),
    expect.stringMatching(/^new +2 part\(s\) {2}current$/),
    expect.stringMatching(/^old +1 part\(s\) {2}NOT LISTED in store\.encryption\.keys; older key$/),
  ]);
});
