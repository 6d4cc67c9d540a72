// Process life: SIGTERM stops accepting, lets deliveries in flight finish and
// exits 0 with nothing lost; SIGHUP reloads the config (and keeps the old one
// when the new file is broken).
import { mkdtempSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it, vi } from 'vitest';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { startMx, type StartedMx } from '../helpers/mx.ts';
import { spawnRelay, writeConfigFile, type RelayProcess } from '../helpers/relay-process.ts';
import { queueIdOf, submit, testConfig } from '../helpers/relay.ts';

const started: RelayProcess[] = [];
/** A stop signal this long after the first is a second one (src/cli/start.ts REPEAT_IGNORED_MS). */
const REPEAT_IGNORED_MS = 1000;
/** Until the MX has the message's DATA (its reply held back): the delivery is in flight. */
const inFlight = (mx: StartedMx) => vi.waitFor(() => expect(mx.data.begun).toBe(1), { timeout: 15_000, interval: 50 });
const mxs: StartedMx[] = [];
afterAll(async () => {
  for (const r of started) r.proc.kill('SIGKILL');
  await Promise.all(mxs.map((m) => m.close()));
});

it('SIGTERM: stops accepting, finishes the delivery in flight, exits 0, queue intact', async () => {
  // The receiver answers DATA only when released: the delivery is in flight when SIGTERM lands.
  const mx = await startMx('tls13', { name: 'mx.slow.test', holdData: true });
  mxs.push(mx);
  const dir = mkdtempSync(join(tmpdir(), 'sealrelay-term-'));
  const config = testConfig({ store: { path: join(dir, 'q.db') }, delivery: { routes: { 'slow.test': `127.0.0.1:${mx.port}` } }, logging: { level: 'info' } });
  const relay = await spawnRelay(writeConfigFile(dir, config));
  started.push(relay);
  const port = relay.ports.starttls!;
  const id = queueIdOf(await submit({ port, from: 'a@x.test', to: ['u@slow.test'] }));
  await inFlight(mx);
  relay.proc.kill('SIGTERM');
  await relay.waitForLine((l) => l.event === 'relay.stopping');
  await expect(submit({ port, from: 'a@x.test', to: ['u@slow.test'] })).rejects.toThrow();
  // Stopping, and still delivering: the receiver answers now.
  mx.releaseData();
  expect(await relay.exited).toBe(0);
  const store = new SqliteStore(config.store.path);
  const records = await store.queryRecords({ message: id });
  expect(records.map((r) => r.outcome)).toEqual(['delivered']);
  expect(await store.getQueueEntry(id)).toBeNull();
  await store.close();
  expect(relay.lines.some((l) => l.event === 'relay.stopped')).toBe(true);
  // The delivery thread writes its own lines to the same stdout, whole.
  expect(relay.lines.filter((l) => l.event === 'delivery.record').map((l) => (l.record as { outcome: string }).outcome)).toEqual(['delivered']);
  expect(relay.lines.filter((l) => 'raw' in l)).toEqual([]);
}, 60_000);

it('SIGHUP reloads the policy; a broken file is refused and the old config stays', async () => {
  const mx = await startMx('plain', { name: 'mx.hup.test' });
  mxs.push(mx);
  const dir = mkdtempSync(join(tmpdir(), 'sealrelay-hup-'));
  const config = testConfig({ store: { path: join(dir, 'q.db') }, delivery: { routes: { 'hup.test': `127.0.0.1:${mx.port}` } }, logging: { level: 'info' } });
  const file = writeConfigFile(dir, config);
  const relay = await spawnRelay(file);
  started.push(relay);
  const port = relay.ports.starttls!;

  // Plain peer under the default (opportunistic) policy: delivered in plaintext.
  await submit({ port, from: 'a@x.test', to: ['one@hup.test'] });
  await mx.waitFor(1);

  // Now the domain must be tls-exclusive: after SIGHUP the plain peer gets nothing.
  const strict = readFileSync(file, 'utf8').replace(/domains: \{\}/, 'domains:\n    hup.test:\n      mode: tls-exclusive');
  expect(strict).toContain('tls-exclusive');
  writeFileSync(file, strict);
  relay.proc.kill('SIGHUP');
  await relay.waitForLine((l) => l.event === 'relay.reloaded');
  const id = queueIdOf(await submit({ port, from: 'a@x.test', to: ['two@hup.test'] }));
  const store = new SqliteStore(config.store.path);
  for (let i = 0; i < 100 && !(await store.queryRecords({ message: id })).length; i++) await new Promise((r) => setTimeout(r, 100));
  expect((await store.queryRecords({ message: id })).map((r) => r.outcome)).toEqual(['dropped']);
  expect(mx.received).toHaveLength(1);

  // A broken file: reload refused with line and key, the relay keeps running on the old config.
  writeFileSync(file, strict.replace('mode: tls-exclusive', 'mode: tls-exclusive\n      bogus: 1'));
  relay.proc.kill('SIGHUP');
  const failed = await relay.waitForLine((l) => l.event === 'relay.reload_failed');
  expect(JSON.stringify(failed)).toMatch(/bogus/);
  expect(JSON.stringify(failed)).toMatch(/sealrelay\.yaml:\d+/);
  const id3 = queueIdOf(await submit({ port, from: 'a@x.test', to: ['three@hup.test'] }));
  for (let i = 0; i < 100 && !(await store.queryRecords({ message: id3 })).length; i++) await new Promise((r) => setTimeout(r, 100));
  expect((await store.queryRecords({ message: id3 })).map((r) => r.outcome)).toEqual(['dropped']);
  await store.close();
  relay.proc.kill('SIGTERM');
  expect(await relay.exited).toBe(0);
}, 60_000);

it('editing the config file reloads the policy without a signal', async () => {
  const mx = await startMx('plain', { name: 'mx.edit.test' });
  mxs.push(mx);
  const dir = mkdtempSync(join(tmpdir(), 'sealrelay-edit-'));
  const config = testConfig({ store: { path: join(dir, 'q.db') }, delivery: { routes: { 'edit.test': `127.0.0.1:${mx.port}` } }, logging: { level: 'info' } });
  const file = writeConfigFile(dir, config);
  const relay = await spawnRelay(file);
  started.push(relay);
  writeFileSync(file, readFileSync(file, 'utf8').replace(/domains: \{\}/, 'domains:\n    edit.test:\n      mode: tls-exclusive'));
  await relay.waitForLine((l) => l.event === 'relay.reloaded' && l.configFile === file, 10_000);
  const id = queueIdOf(await submit({ port: relay.ports.starttls!, from: 'a@x.test', to: ['u@edit.test'] }));
  const store = new SqliteStore(config.store.path);
  for (let i = 0; i < 100 && !(await store.queryRecords({ message: id })).length; i++) await new Promise((r) => setTimeout(r, 100));
  expect((await store.queryRecords({ message: id })).map((r) => r.outcome)).toEqual(['dropped']);
  await store.close();
  relay.proc.kill('SIGTERM');
  expect(await relay.exited).toBe(0);
}, 60_000);

it('a stop signal repeated at once is the same stop; a later one exits 1 without waiting', async () => {
  const mx = await startMx('tls13', { name: 'mx.twice.test', holdData: true });
  const later = await startMx('tls13', { name: 'mx.later.test', holdData: true });
  mxs.push(mx, later);
  const dir = mkdtempSync(join(tmpdir(), 'sealrelay-twice-'));
  const routes = { 'twice.test': `127.0.0.1:${mx.port}`, 'later.test': `127.0.0.1:${later.port}` };
  // Held deliveries outlast neither the relay's patience with the receiver nor its grace period.
  const config = testConfig({ store: { path: join(dir, 'q.db') }, delivery: { routes, socket_timeout_ms: 120_000, shutdown_grace_seconds: 30 }, logging: { level: 'info' } });
  const file = writeConfigFile(dir, config);

  // Twice within a moment (a terminal's Ctrl-C plus npm forwarding it): one graceful stop, the delivery finishes.
  const relay = await spawnRelay(file);
  started.push(relay);
  await submit({ port: relay.ports.starttls!, from: 'a@x.test', to: ['u@twice.test'] });
  await inFlight(mx);
  relay.proc.kill('SIGINT');
  relay.proc.kill('SIGTERM');
  await relay.waitForLine((l) => l.event === 'relay.stopping');
  mx.releaseData();
  expect(await relay.exited).toBe(0);
  expect(relay.lines.filter((l) => l.event === 'delivery.record').map((l) => (l.record as { outcome: string }).outcome)).toEqual(['delivered']);

  // A second signal well after the first: the operator will not wait.
  const again = await spawnRelay(file);
  started.push(again);
  await submit({ port: again.ports.starttls!, from: 'a@x.test', to: ['v@later.test'] });
  await inFlight(later);
  again.proc.kill('SIGTERM');
  const stopping = await again.waitForLine((l) => l.event === 'relay.stopping');
  // Not a wait for an event: "later" is the rule under test. Past the repeat window, counted from the stop's own log time.
  await new Promise((r) => setTimeout(r, Math.max(0, Date.parse(stopping.time as string) + REPEAT_IGNORED_MS + 200 - Date.now())));
  again.proc.kill('SIGTERM');
  expect(await again.exited).toBe(1);
  expect(again.lines.some((l) => l.event === 'relay.stopped' && l.msg === 'second signal: exiting without waiting')).toBe(true);
}, 60_000);
