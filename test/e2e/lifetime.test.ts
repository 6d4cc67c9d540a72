// forced toward a peer without STARTTLS: deferred (never plaintext) until the
// queue lifetime runs out, then bounced with a DSN that says why.
import { afterAll, expect, it } from 'vitest';
import { startMxSet, type MxSet } from '../helpers/mx.ts';
import { queueIdOf, startTestRelay, submit, testConfig, type TestRelay } from '../helpers/relay.ts';

let mxs: MxSet | undefined;
let relay: TestRelay | undefined;
afterAll(async () => {
  await relay?.close();
  await mxs?.close();
});

it('forced: deferred while the MX offers no TLS, bounced at queue lifetime, nothing sent in the clear', async () => {
  mxs = await startMxSet([
    { kind: 'plain', name: 'mx.cleartext.test' },
    { kind: 'tls13', name: 'mx.sender.test' },
  ]);
  const at = (name: string) => `${mxs!.byName(name).host}:${mxs!.port}`;
  relay = await startTestRelay(
    testConfig({
      delivery: {
        routes: { 'cleartext.test': at('mx.cleartext.test'), 'clinic.test': at('mx.sender.test') },
        retry: { first_seconds: 0.2, max_seconds: 0.3, factor: 1, lifetime_seconds: 1.5 },
      },
      policies: { domains: { 'cleartext.test': { mode: 'forced' } } },
    }),
  );
  const id = queueIdOf(await submit({ port: relay.port, from: 'app@clinic.test', to: ['pat@cleartext.test'] }));
  const records = await relay.waitForRecords((r) => r.some((x) => x.queueId === id && x.outcome === 'bounced'), 15_000);
  const mine = records.filter((r) => r.queueId === id);
  expect(mine.length).toBeGreaterThanOrEqual(2);
  expect(mine.slice(0, -1).every((r) => r.outcome === 'deferred' && r.method === 'none' && r.starttlsOffered === false)).toBe(true);
  expect(mine.at(-1)!.smtp.response).toMatch(/STARTTLS[\s\S]*delivery time expired/);
  expect(mxs.byName('mx.cleartext.test').received).toHaveLength(0);

  const [dsn] = await mxs.byName('mx.sender.test').waitFor(1);
  expect(dsn!.envelope).toEqual({ from: '', to: ['app@clinic.test'] });
  expect(dsn!.raw.toString()).toMatch(/Final-Recipient: rfc822; ?pat@cleartext\.test/i);
  expect(dsn!.raw.toString()).toMatch(/Status: 4\.4\.7|Status: 4\.7\.\d/);
}, 30_000);
