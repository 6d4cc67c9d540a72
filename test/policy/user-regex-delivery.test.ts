// A header that JavaScript's regex engine would backtrack on for hours must not
// hold up delivery: a real relay with a rule regex and a DLP pattern of the shape
// (a+)+$, a real MX, and a message carrying "aaa…a!" in its header and body.
// No timing: with the native engine the records would never come.
import { afterAll, describe, expect, it } from 'vitest';
import { startMxSet, type MxSet } from '../helpers/mx.ts';
import { queueIdOf, startTestRelay, submit, testConfig, type TestRelay } from '../helpers/relay.ts';

const HOSTILE = `${'a'.repeat(40)}!`;

describe('delivery is not held up by a hostile header', () => {
  let mxs: MxSet | undefined;
  let relay: TestRelay | undefined;
  afterAll(async () => {
    await relay?.close();
    await mxs?.close();
  });

  it('the message with X-Tag: aaa…a! is delivered; one the rule matches is held to forced', async () => {
    mxs = await startMxSet([{ kind: 'plain', name: 'mx.plain.test' }]);
    relay = await startTestRelay(
      testConfig({
        delivery: { routes: { 'plain.test': `${mxs.mxs[0]!.host}:${mxs.port}` }, retry: { first_seconds: 3600 } },
        policies: { rules: [{ name: 'tagged', match: { header: { name: 'X-Tag', regex: '(a+)+$' } }, mode: 'forced' }, { name: 'tag-dlp', match: { dlp: ['tag'] }, mode: 'forced' }] },
        dlp: { custom: [{ id: 'tag', pattern: '(a+)+$' }] },
      }),
    );
    const send = async (tag: string, text: string) =>
      queueIdOf(await submit({ port: relay!.port, from: 'app@clinic.test', to: ['pat@plain.test'], body: `From: <app@clinic.test>\r\nSubject: hi\r\nX-Tag: ${tag}\r\n\r\n${text}` }));
    const hostile = await send(HOSTILE, HOSTILE);
    const matched = await send('aaaa', 'nothing');
    const records = await relay.waitForRecords((r) => r.some((x) => x.queueId === hostile) && r.some((x) => x.queueId === matched));
    expect(records.find((r) => r.queueId === hostile)).toMatchObject({ outcome: 'delivered', method: 'plaintext', decision: { rule: 'default' } });
    expect(records.find((r) => r.queueId === matched)).toMatchObject({ outcome: 'deferred', decision: { mode: 'forced', rule: 'rule:tagged' } });
    expect(mxs.mxs[0]!.received).toHaveLength(1);
  });
});
