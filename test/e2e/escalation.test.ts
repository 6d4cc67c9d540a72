// Escalation end to end: a subject tag raises the whole message to `forced` (so a
// plaintext-only MX gets nothing) and is cut from the subject the recipient sees;
// an authenticated submitter's mode header escalates too and never leaves the relay.
import { afterAll, expect, it } from 'vitest';
import { startMxSet, type MxSet } from '../helpers/mx.ts';
import { queueIdOf, startTestRelay, submit, testConfig, type TestRelay } from '../helpers/relay.ts';

let mxs: MxSet | undefined;
let relay: TestRelay | undefined;
afterAll(async () => {
  await relay?.close();
  await mxs?.close();
});

it('subject tag: forced for every recipient, tag and mode header removed from what is delivered', async () => {
  mxs = await startMxSet([
    { kind: 'tls13', name: 'mx.tls.test' },
    { kind: 'plain', name: 'mx.plain.test' },
  ]);
  const at = (n: string) => `${mxs!.byName(n).host}:${mxs!.port}`;
  relay = await startTestRelay(
    testConfig({
      delivery: { routes: { 'tls.test': at('mx.tls.test'), 'plain.test': at('mx.plain.test') }, retry: { first_seconds: 3600 } },
      policies: { escalation: { subject_tag: { tag: '[secure]', mode: 'forced' }, header: { name: 'X-SealRelay-Mode' } } },
    }),
  );
  const body = 'From: <app@clinic.test>\r\nSubject: [Secure] Your lab results\r\nX-SealRelay-Mode: opportunistic\r\n\r\nresults inside\r\n';
  const id = queueIdOf(await submit({ port: relay.port, from: 'app@clinic.test', to: ['a@tls.test', 'b@plain.test'], body }));
  const records = await relay.waitForRecords((r) => r.filter((x) => x.queueId === id).length === 2);
  const by = (rcpt: string) => records.find((r) => r.queueId === id && r.recipient === rcpt)!;
  expect(by('a@tls.test')).toMatchObject({ outcome: 'delivered', method: 'tls', decision: { mode: 'forced', rule: 'escalation:subject-tag' } });
  expect(by('b@plain.test')).toMatchObject({ outcome: 'deferred', method: 'none', decision: { mode: 'forced' } });
  expect(mxs.byName('mx.plain.test').received).toHaveLength(0);

  const [got] = mxs.byName('mx.tls.test').received;
  const text = got!.raw.toString();
  expect(text).toMatch(/^Subject: Your lab results\r$/m);
  expect(text).not.toMatch(/\[secure\]/i);
  expect(text).not.toMatch(/X-SealRelay-Mode/i);
  expect(text).toContain('results inside');
});

it('DLP: an SSN in an attachment raises the message to forced; the record names the detector, never the number', async () => {
  const set = await startMxSet([{ kind: 'plain', name: 'mx.dlp.test' }]);
  const dlpRelay = await startTestRelay(
    testConfig({
      delivery: { routes: { 'dlp.test': `${set.mxs[0]!.host}:${set.port}` }, retry: { first_seconds: 3600 } },
      policies: { rules: [{ name: 'phi', match: { dlp: ['ssn', 'mrn'] }, mode: 'forced' }] },
    }),
  );
  try {
    const attachment = Buffer.from('name,ssn\r\nPat Doe,078-05-1120\r\n').toString('base64');
    const body = [
      'From: <app@clinic.test>',
      'Subject: roster',
      'MIME-Version: 1.0',
      'Content-Type: multipart/mixed; boundary="b1"',
      '',
      '--b1',
      'Content-Type: text/plain',
      '',
      'see attached',
      '--b1',
      'Content-Type: text/csv; name="roster.csv"',
      'Content-Transfer-Encoding: base64',
      '',
      attachment,
      '--b1--',
      '',
    ].join('\r\n');
    const clean = queueIdOf(await submit({ port: dlpRelay.port, from: 'app@clinic.test', to: ['a@dlp.test'], body: 'Subject: hi\r\n\r\nnothing here\r\n' }));
    const phi = queueIdOf(await submit({ port: dlpRelay.port, from: 'app@clinic.test', to: ['b@dlp.test'], body }));
    const records = await dlpRelay.waitForRecords((r) => r.some((x) => x.queueId === clean) && r.some((x) => x.queueId === phi));
    expect(records.find((x) => x.queueId === clean)).toMatchObject({ outcome: 'delivered', method: 'plaintext', decision: { mode: 'opportunistic' } });
    const r = records.find((x) => x.queueId === phi)!;
    expect(r).toMatchObject({ outcome: 'deferred', method: 'none', decision: { mode: 'forced', rule: 'rule:phi' } });
    expect(r.decision.reasons.join(' ')).toMatch(/DLP detector ssn fired/);
    expect(JSON.stringify(records)).not.toContain('078-05-1120');
    expect(set.mxs[0]!.received.map((m) => m.envelope.to)).toEqual([['a@dlp.test']]);
  } finally {
    await dlpRelay.close();
    await set.close();
  }
});
