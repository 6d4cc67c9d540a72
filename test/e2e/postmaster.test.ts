// RCPT TO:<postmaster> (no domain, RFC 5321 §4.5.1) through the whole relay: it is
// queued for ingress.postmaster and delivered there, with a record for that address.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startMxSet, type MxSet } from '../helpers/mx.ts';
import { queueIdOf, startTestRelay, submit, testConfig, type TestRelay } from '../helpers/relay.ts';

let mxs: MxSet;
let relay: TestRelay;
beforeAll(async () => {
  mxs = await startMxSet([{ kind: 'tls13', name: 'mx.clinic.test' }]);
  relay = await startTestRelay(
    testConfig({
      ingress: { listeners: { submission: { host: '127.0.0.1', port: 0, tls: 'starttls' } }, postmaster: 'it-team@clinic.test' },
      delivery: { routes: { 'clinic.test': `${mxs.mxs[0]!.host}:${mxs.port}` } },
    }),
  );
}, 30_000);
afterAll(async () => {
  await relay?.close();
  await mxs?.close();
});

it('<postmaster> is delivered to ingress.postmaster', async () => {
  const id = queueIdOf(await submit({ port: relay.port, from: 'app@clinic.test', to: ['postmaster'], body: 'Subject: to the postmaster\r\n\r\nhello\r\n' }));
  const mx = mxs.mxs[0]!;
  await mx.waitFor(1);
  expect(mx.received[0]!.envelope).toEqual({ from: 'app@clinic.test', to: ['it-team@clinic.test'] });
  const records = await relay.waitForRecords((r) => r.some((x) => x.queueId === id));
  expect(records.filter((r) => r.queueId === id)).toMatchObject([{ recipient: 'it-team@clinic.test', domain: 'clinic.test', outcome: 'delivered' }]);
}, 30_000);
