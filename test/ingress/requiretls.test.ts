// REQUIRETLS (RFC 8689) at ingress, over raw sockets: offered only once the session
// runs over TLS, refused on a plaintext session, and kept with the queued message.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { RawClient, runSteps, startTestIngress, type Step } from './harness.ts';

const EHLO: Step = ['EHLO app.clinic.test', 250];
const BODY = 'From: app@clinic.test\r\nTo: pat@example.test\r\nSubject: s\r\n\r\nbody\r\n.\r\n';

let t: Awaited<ReturnType<typeof startTestIngress>>;
beforeAll(async () => {
  t = await startTestIngress();
});
afterAll(() => t.close());

describe('REQUIRETLS at ingress (RFC 8689)', () => {
  test('EHLO lists REQUIRETLS only after STARTTLS', async () => {
    const c = await RawClient.open(t.port());
    const plain = await c.cmd('EHLO app.clinic.test');
    expect(plain.lines).not.toContain('REQUIRETLS');
    await runSteps(c, [['STARTTLS', 220]]);
    const secure = await c.cmd('EHLO app.clinic.test');
    expect(secure.lines).toContain('REQUIRETLS');
    await c.quit();
  });

  test('MAIL FROM … REQUIRETLS on a plaintext session is refused (530) and nothing is queued', async () => {
    const before = t.store.messages.length;
    const c = await RawClient.open(t.port());
    await runSteps(c, [EHLO, ['MAIL FROM:<app@clinic.test> REQUIRETLS', 530]]);
    // No transaction was opened: RCPT is out of sequence.
    await runSteps(c, [['RCPT TO:<pat@example.test>', 503]]);
    await c.quit();
    expect(t.store.messages.length).toBe(before);
  });

  test('over TLS the message is queued with the flag; without the parameter it is not', async () => {
    const send = async (mail: string) => {
      const before = t.store.messages.length;
      const c = await RawClient.open(t.port());
      await runSteps(c, [EHLO, ['STARTTLS', 220], EHLO, [mail, 250], ['RCPT TO:<pat@example.test>', 250], ['DATA', 354]]);
      c.write(BODY);
      expect((await c.reply()).code).toBe(250);
      await c.quit();
      expect(t.store.messages.length).toBe(before + 1);
      return t.store.messages.at(-1)!;
    };
    expect((await send('MAIL FROM:<app@clinic.test> REQUIRETLS')).requireTls).toBe(true);
    expect((await send('MAIL FROM:<app@clinic.test>')).requireTls ?? false).toBe(false);
  });

  test('REQUIRETLS takes no value (501)', async () => {
    const c = await RawClient.open(t.port());
    await runSteps(c, [EHLO, ['STARTTLS', 220], EHLO, ['MAIL FROM:<app@clinic.test> REQUIRETLS=YES', 501]]);
    await c.quit();
  });
});
