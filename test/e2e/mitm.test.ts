// A STARTTLS-stripping man in the middle (test/helpers/mitm.ts) in front of a
// TLS-capable receiver: a TLS-known domain gets zero plaintext deliveries, not even
// a sealed fallback copy; an unknown domain under opportunistic gets plaintext, and
// its record says so.
import { afterAll, expect, it, vi } from 'vitest';
import { startDnsStub, type DnsStub } from '../helpers/dns-stub.ts';
import { startStripTlsProxy } from '../helpers/mitm.ts';
import { startMxSet, type MxSet, type StartedMx } from '../helpers/mx.ts';
import { queueIdOf, startTestRelay, submit, testConfig, type TestRelay } from '../helpers/relay.ts';
import { createGpgHome } from '../helpers/gpg.ts';
import { parseKeyFile } from '../../src/crypto/keys.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';

let dns: DnsStub | undefined;
let mxs: MxSet | undefined;
let relay: TestRelay | undefined;
let proxy: Awaited<ReturnType<typeof startStripTlsProxy>> | undefined;
afterAll(async () => {
  await relay?.close();
  await proxy?.close();
  await mxs?.close();
  await dns?.close();
});

/** Until every connection the receiver had is closed: the relay has let its idle one go. */
const allClosed = (mx: StartedMx) => vi.waitFor(() => expect(mx.sessions.filter((s) => !s.closed)).toEqual([]), { timeout: 15_000, interval: 50 });

it('stripping STARTTLS: TLS-known domain deferred as possible-downgrade, unknown domain in plaintext (recorded)', async () => {
  mxs = await startMxSet([{ kind: 'tls13', name: 'mx.victim.test' }]);
  const mx = mxs.byName('mx.victim.test');
  proxy = await startStripTlsProxy({ upstreamHost: mx.host, upstreamPort: mx.port, port: mxs.port, mode: 'pass' });
  // Both domains' MX resolve to the attacker's proxy.
  dns = await startDnsStub({
    'known.test': { MX: [{ preference: 10, exchange: 'mx.victim.test' }] },
    'fresh.test': { MX: [{ preference: 10, exchange: 'mx.victim.test' }] },
    'mx.victim.test': { A: [proxy.host] },
  });
  relay = await startTestRelay(testConfig({ delivery: { port: mxs.port, dns: { servers: [dns.server] }, retry: { first_seconds: 0.3, max_seconds: 0.5 } } }));

  // Before the attack: known.test delivers over TLS and becomes TLS-known.
  const before = queueIdOf(await submit({ port: relay.port, from: 'app@clinic.test', to: ['pat@known.test'] }));
  await relay.waitForRecords((r) => r.some((x) => x.queueId === before && x.outcome === 'delivered' && x.method === 'tls'));

  // The attack starts; once the idle connection is gone (the receiver sees it close), the next attempt dials anew.
  proxy.setMode('strip');
  await allClosed(mx);
  const receivedBefore = mx.received.length;

  const known = queueIdOf(await submit({ port: relay.port, from: 'app@clinic.test', to: ['pat@known.test'] }));
  const fresh = queueIdOf(await submit({ port: relay.port, from: 'app@clinic.test', to: ['pat@fresh.test'] }));
  const records = await relay.waitForRecords(
    (r) => r.filter((x) => x.queueId === known).length >= 2 && r.some((x) => x.queueId === fresh),
    15_000,
  );

  // Zero plaintext deliveries for the TLS-known domain, however often it is retried.
  const knownRecords = records.filter((x) => x.queueId === known);
  expect(knownRecords.every((r) => r.outcome === 'deferred' && r.method === 'none' && r.starttlsOffered === false)).toBe(true);
  expect(knownRecords[0]!.smtp.response).toMatch(/^possible-downgrade:/);
  // The unknown domain goes in plaintext, and its record says exactly that.
  const [freshRecord] = records.filter((x) => x.queueId === fresh);
  expect(freshRecord).toMatchObject({ outcome: 'delivered', method: 'plaintext', tls: null, starttlsOffered: false });

  const since = mx.received.slice(receivedBefore);
  expect(since.map((m) => m.envelope.to)).toEqual([['pat@fresh.test']]);
  expect(since[0]!.tls).toBeNull();
  expect(proxy.strippedEhlo).toBeGreaterThanOrEqual(2);
}, 60_000);

it('forced toward a TLS-known domain whose STARTTLS is stripped: not even the sealed PGP copy goes in plaintext', async () => {
  const gpg = createGpgHome();
  const mxSet = await startMxSet([{ kind: 'tls13', name: 'mx.locked.test' }]);
  const mx = mxSet.byName('mx.locked.test');
  const mitm = await startStripTlsProxy({ upstreamHost: mx.host, upstreamPort: mx.port, port: mxSet.port, mode: 'pass' });
  const zone = await startDnsStub({ 'locked.test': { MX: [{ preference: 10, exchange: 'mx.locked.test' }] }, 'mx.locked.test': { A: [mitm.host] } });
  let locked: TestRelay | undefined;
  try {
    const config = testConfig({
      delivery: { port: mxSet.port, dns: { servers: [zone.server] }, retry: { first_seconds: 0.3, max_seconds: 0.5 } },
      policies: { domains: { 'locked.test': { mode: 'forced' } } },
      crypto: { wkd: { enabled: false } },
    });
    const key = await gpg.generateKey({ uid: 'Pat <pat@locked.test>' });
    const store = new SqliteStore(config.store.path);
    for (const k of (await parseKeyFile(Buffer.from(key.publicArmored), { source: 'import', now: Date.now() })).keys) await store.putKey(k);
    await store.close();
    locked = await startTestRelay(config);

    // Over TLS first: locked.test becomes TLS-known.
    const before = queueIdOf(await submit({ port: locked.port, from: 'lab@clinic.test', to: ['pat@locked.test'] }));
    await locked.waitForRecords((r) => r.some((x) => x.queueId === before && x.outcome === 'delivered' && x.method === 'tls'));
    mitm.setMode('strip');
    await allClosed(mx);
    const receivedBefore = mx.received.length;

    const id = queueIdOf(await submit({ port: locked.port, from: 'lab@clinic.test', to: ['pat@locked.test'] }));
    const records = (await locked.waitForRecords((r) => r.filter((x) => x.queueId === id).length >= 2, 15_000)).filter((x) => x.queueId === id);
    // The key was there and was used to seal a copy, but the copy stayed home.
    expect(records.every((r) => r.outcome === 'deferred' && r.method === 'none')).toBe(true);
    expect(records[0]!.fallback?.tried).toEqual([`pgp: key ${key.fingerprint} (import)`]);
    expect(records[0]!.smtp.response).toMatch(/possible-downgrade/);
    expect(mx.received.length).toBe(receivedBefore);
  } finally {
    await locked?.close();
    await mitm.close();
    await mxSet.close();
    await zone.close();
    await gpg.close();
  }
}, 60_000);
