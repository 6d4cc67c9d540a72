// The ingress end of mail loops: more Received: fields than ingress.max_hops is
// refused at the end of DATA (554 5.4.0, Postfix's reply), and a message carrying
// our own Received stamp for a queue id still in the queue came back to us
// (554 5.4.6). Nothing refused is queued.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { HOSTNAME, ingressConfig, RawClient, startTestIngress, submitOne } from './harness.ts';

let t: Awaited<ReturnType<typeof startTestIngress>>;
beforeAll(async () => {
  t = await startTestIngress({ config: ingressConfig({ max_hops: 5 }) });
});
afterAll(() => t.close());

const received = (by: string, id = 'abc') => `Received: from a.test (a.test [192.0.2.1])\r\n\tby ${by} with ESMTP id ${id};\r\n\tTue, 04 Mar 2025 10:11:12 +0000\r\n`;

const submit = (message: string) => submitOne(t, message);

describe('hop limit (ingress.max_hops)', () => {
  test('exactly max_hops Received fields pass', async () => {
    const { reply, queued } = await submit(`${received('hop.test').repeat(5)}Subject: s\r\n\r\nbody\r\n`);
    expect(reply.code).toBe(250);
    expect(queued).toHaveLength(1);
  });

  test('one more is refused 554 5.4.0 Too many hops, nothing queued, and logged', async () => {
    const { reply, queued } = await submit(`${received('hop.test').repeat(6)}Subject: s\r\n\r\nbody\r\n`);
    expect(`${reply.code} ${reply.text}`).toBe('554 5.4.0 Too many hops');
    expect(queued).toEqual([]);
    expect(t.logs.some((l) => l.event === 'ingress.rejected' && l.reason === 'Too many hops')).toBe(true);
  });

  test('field names in any case count; Received lines in the body do not', async () => {
    const mixed = 'RECEIVED: x\r\nreceived : y\r\n'.repeat(3);
    expect((await submit(`${mixed}Subject: s\r\n\r\nbody\r\n`)).reply.code).toBe(554);
    expect((await submit(`Subject: s\r\n\r\n${received('hop.test').repeat(20)}`)).reply.code).toBe(250);
  });

  test('the default is 50 (Postfix hop_count_limit)', async () => {
    const d = await startTestIngress();
    try {
      const send = async (n: number) => {
        const c = await RawClient.open(d.port());
        await c.ehlo();
        const r = await c.send('app@clinic.test', ['ann@example.test'], `${received('hop.test').repeat(n)}Subject: s\r\n\r\nb\r\n`);
        await c.quit();
        return r.code;
      };
      expect(await send(50)).toBe(250);
      expect(await send(51)).toBe(554);
    } finally {
      await d.close();
    }
  });
});

describe('our own stamp on a message still queued', () => {
  test('came back: 554 5.4.6 naming the queue id; the same stamp once its entry is gone passes', async () => {
    const first = await submit('Subject: first\r\n\r\nbody\r\n');
    expect(first.reply.code).toBe(250);
    const queued = t.store.messages.at(-1)!;
    // The message as delivery sends it on, with our stamp on top, arriving again.
    const looped = await submit(queued.body.toString('latin1'));
    expect(`${looped.reply.code} ${looped.reply.text}`).toBe(`554 5.4.6 Mail loop detected: this message is already queued here as ${queued.queueId}`);
    expect(looped.queued).toEqual([]);

    // A stamp of ours whose queue entry is finished is a legitimate second pass (forwarded back by a mailbox rule).
    const finished = received(`${HOSTNAME} (SealRelay)`, '0000000000000000');
    expect((await submit(`${finished}Subject: again\r\n\r\nbody\r\n`)).reply.code).toBe(250);
  });

  test("another relay's stamp with a queued id is not ours", async () => {
    await submit('Subject: x\r\n\r\nbody\r\n');
    const id = t.store.messages.at(-1)!.queueId;
    expect((await submit(`${received('other.example (SealRelay)', id)}Subject: x\r\n\r\nbody\r\n`)).reply.code).toBe(250);
  });
});
