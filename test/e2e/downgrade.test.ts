// Domain knowledge against downgrades: once a domain has delivered over TLS it is
// TLS-known, and an MX that suddenly offers no STARTTLS (what a STARTTLS-stripping
// man in the middle looks like) gets nothing in plaintext — the attempt is deferred
// and recorded as a possible downgrade, even under `opportunistic`. The knowledge
// survives restarts, and `sealrelay domains forget` resets it.
import { execFile } from 'node:child_process';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, expect, it } from 'vitest';
import { startDnsStub, type DnsStub } from '../helpers/dns-stub.ts';
import { startMxSet, type MxSet } from '../helpers/mx.ts';
import { writeConfigFile } from '../helpers/relay-process.ts';
import { queueIdOf, startTestRelay, submit, testConfig, type TestRelay } from '../helpers/relay.ts';

const run = promisify(execFile);
const ROOT = join(import.meta.dirname, '..', '..');
const cli = (configFile: string, ...args: string[]) => run(process.execPath, [join(ROOT, 'bin/sealrelay.js'), '--config', configFile, ...args], { cwd: ROOT });

let dns: DnsStub | undefined;
let mxs: MxSet | undefined;
let relay: TestRelay | undefined;
afterAll(async () => {
  await relay?.close();
  await mxs?.close();
  await dns?.close();
});

it('a TLS-known domain never gets plaintext; forgetting it restores opportunistic behaviour', async () => {
  mxs = await startMxSet([
    { kind: 'tls13', name: 'mx.known.test' },
    { kind: 'plain', name: 'mx.stripped.test' },
  ]);
  dns = await startDnsStub({
    'known.test': { MX: [{ preference: 10, exchange: 'mx.known.test' }] },
    'mx.known.test': { A: [mxs.byName('mx.known.test').host] },
    'mx.stripped.test': { A: [mxs.byName('mx.stripped.test').host] },
  });
  const config = testConfig({ delivery: { port: mxs.port, dns: { servers: [dns.server] }, retry: { first_seconds: 0.3, max_seconds: 0.5 } } });
  const configFile = writeConfigFile(dirname(config.store.path), config);

  // 1. A first delivery over TLS makes known.test TLS-known.
  relay = await startTestRelay(config);
  const first = queueIdOf(await submit({ port: relay.port, from: 'app@clinic.test', to: ['pat@known.test'] }));
  await relay.waitForRecords((r) => r.some((x) => x.queueId === first && x.outcome === 'delivered'));
  await relay.close();
  const shown = JSON.parse((await cli(configFile, 'domains', 'show', 'known.test', '--json')).stdout) as { tlsKnownSince: number | null };
  expect(shown.tlsKnownSince).toBeGreaterThan(0);

  // 2. Now the domain's MX offers no STARTTLS. A new relay process (knowledge is in the store) defers.
  dns.set('known.test', 'MX', [{ preference: 10, exchange: 'mx.stripped.test' }]);
  relay = await startTestRelay(config);
  const second = queueIdOf(await submit({ port: relay.port, from: 'app@clinic.test', to: ['pat@known.test'] }));
  const records = await relay.waitForRecords((r) => r.filter((x) => x.queueId === second).length >= 2);
  const mine = records.filter((x) => x.queueId === second);
  for (const r of mine) {
    expect(r).toMatchObject({ outcome: 'deferred', method: 'none', starttlsOffered: false, decision: { mode: 'opportunistic' } });
    expect(r.smtp.response).toMatch(/^possible-downgrade: known\.test is known to offer TLS/);
    expect(r.decision.reasons.join(' ')).toMatch(/known\.test is TLS-known: delivered over TLS since/);
  }
  expect(mxs.byName('mx.stripped.test').received).toHaveLength(0);

  // 3. The operator forgets the domain: it is an unknown domain again, and opportunistic
  //    delivers in plaintext — recorded as such.
  expect((await cli(configFile, 'domains', 'forget', 'known.test')).stdout).toBe('forgot known.test\n');
  await relay.waitForRecords((r) => r.some((x) => x.queueId === second && x.outcome === 'delivered'));
  const delivered = (await relay.records({ message: second })).at(-1)!;
  expect(delivered).toMatchObject({ outcome: 'delivered', method: 'plaintext', tls: null });
  expect(mxs.byName('mx.stripped.test').received).toHaveLength(1);
  const listed = (await cli(configFile, 'domains')).stdout;
  expect(listed).toMatch(/^known\.test\s+no\s/m);
}, 60_000);
