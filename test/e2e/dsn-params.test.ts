// RFC 3461 DSN parameters given at submission are honoured in the bounces the relay
// makes: NOTIFY=NEVER (or without FAILURE) gets no DSN, ENVID comes back as
// Original-Envelope-Id and ORCPT as Original-Recipient. Submitted with nodemailer's
// SMTP client, which sends them because the relay advertises DSN.
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startMxSet, type MxSet } from '../helpers/mx.ts';
import { madeSince, queueIdsIn } from '../helpers/queue-ids.ts';
import { queueIdOf, startTestRelay, testConfig, type TestRelay } from '../helpers/relay.ts';

let mxs: MxSet;
let relay: TestRelay;
beforeAll(async () => {
  mxs = await startMxSet([
    { kind: 'tls13', name: 'mx.clinic.test' },
    { kind: 'tls13', name: 'mx.away.test', rejectRecipients: ['gone@away.test', 'quiet@away.test', 'delayonly@away.test'] },
  ]);
  relay = await startTestRelay(
    testConfig({
      delivery: { routes: { 'clinic.test': `${mxs.byName('mx.clinic.test').host}:${mxs.port}`, 'away.test': `${mxs.byName('mx.away.test').host}:${mxs.port}` } },
    }),
  );
}, 30_000);
afterAll(async () => {
  await relay?.close();
  await mxs?.close();
});

async function send(envelope: { from: string; to: string[]; dsn: Record<string, unknown> }): Promise<string> {
  const conn = new SMTPConnection({ host: '127.0.0.1', port: relay.port, tls: { rejectUnauthorized: false } });
  await new Promise<void>((resolve, reject) => {
    conn.once('error', reject);
    conn.connect(() => resolve());
  });
  try {
    const info = await new Promise<{ response: string }>((resolve, reject) =>
      conn.send(envelope, 'From: app@clinic.test\r\nSubject: results\r\n\r\nSECRET body\r\n', (err, i) => (err ? reject(err) : resolve(i as { response: string }))),
    );
    return info.response;
  } finally {
    conn.quit();
  }
}

it('NOTIFY=FAILURE with ENVID and ORCPT: the DSN carries Original-Envelope-Id and Original-Recipient', async () => {
  const id = queueIdOf(await send({ from: 'app@clinic.test', to: ['gone@away.test'], dsn: { notify: 'FAILURE', envid: 'lab-batch-42', orcpt: 'rfc822;Gone@Away.test', ret: 'FULL' } }));
  await relay.waitForRecords((r) => r.some((x) => x.queueId === id && x.outcome === 'bounced'));
  const sink = mxs.byName('mx.clinic.test');
  await sink.waitFor(1);
  const dsn = sink.received.find((m) => m.raw.toString('latin1').includes(id))!;
  const text = dsn.raw.toString('latin1');
  expect(text).toMatch(/\r\nOriginal-Envelope-Id: lab-batch-42\r\n/);
  expect(text).toMatch(/\r\nOriginal-Recipient: rfc822; Gone@Away\.test\r\nFinal-Recipient: rfc822; gone@away\.test\r\n/);
  // RET=FULL is answered with headers only: the body never travels back.
  expect(text).not.toContain('SECRET body');
}, 30_000);

it('NOTIFY=NEVER and NOTIFY=DELAY: bounced without a DSN; a recipient without NOTIFY still gets one', async () => {
  const sink = mxs.byName('mx.clinic.test');
  const before = sink.received.length;
  const known = await queueIdsIn(relay.config.store.path);
  const quiet = queueIdOf(await send({ from: 'app@clinic.test', to: ['quiet@away.test'], dsn: { notify: 'NEVER' } }));
  const delay = queueIdOf(await send({ from: 'app@clinic.test', to: ['delayonly@away.test'], dsn: { notify: ['DELAY'] } }));
  const plain = queueIdOf(await send({ from: 'app@clinic.test', to: ['gone@away.test'], dsn: {} }));
  await relay.waitForRecords((r) => [quiet, delay, plain].every((id) => r.some((x) => x.queueId === id && x.outcome === 'bounced')));
  // Each DSN is queued in the commit of the record that bounced: the relay made exactly one.
  const made = madeSince(known, await queueIdsIn(relay.config.store.path), [quiet, delay, plain]);
  expect(made).toHaveLength(1);
  // Once that one is delivered, the receiver has every DSN it will ever get.
  await relay.waitForRecords((r) => r.some((x) => x.queueId === made[0] && x.outcome === 'delivered'));
  const dsns = sink.received.slice(before).map((m) => m.raw.toString('latin1'));
  expect(dsns).toHaveLength(1);
  expect(dsns[0]).toContain(plain);
}, 30_000);
