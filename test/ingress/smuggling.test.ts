// SMTP smuggling and STARTTLS command injection, with exact bytes over raw sockets.
//
// smtp-server 3.21 ends DATA only on <CRLF>.<CRLF> (lib/smtp-stream.js END_SEQUENCE),
// so none of the bare-newline "end of data" forms can end a message early here.
// Our policy on top (data-reader.ts): a message holding a bare <LF> or <CR> is
// refused with 550 5.5.2, so no ambiguous line end is ever queued and relayed to a
// next hop that might read it as the end of the message.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { RawClient, runSteps, startTestIngress, type Step } from './harness.ts';

const EHLO: Step = ['EHLO app.clinic.test', 250];
const SMUGGLED = 'MAIL FROM:<evil@attacker.test>\r\nRCPT TO:<victim@example.test>\r\nDATA\r\nSubject: smuggled\r\n\r\nsmuggled\r\n';

let t: Awaited<ReturnType<typeof startTestIngress>>;
beforeAll(async () => {
  t = await startTestIngress();
});
afterAll(() => t.close());

async function openInData(): Promise<RawClient> {
  const c = await RawClient.open(t.port());
  await runSteps(c, [EHLO, ['MAIL FROM:<app@clinic.test>', 250], ['RCPT TO:<patient@example.test>', 250], ['DATA', 354]]);
  return c;
}

describe('SMTP smuggling: one submission is one message or none', () => {
  const rows: [name: string, fakeEnd: string][] = [
    ['<LF>.<LF>', '\n.\n'],
    ['<CR>.<CR>', '\r.\r'],
    ['<LF>.<CRLF>', '\n.\r\n'],
    ['<CRLF>.<LF>', '\r\n.\n'],
    ['<CR>.<CRLF>', '\r.\r\n'],
    ['<CRLF>.<CR>', '\r\n.\r'],
    ['<LF>..<LF> (stuffed)', '\n..\n'],
  ];
  test.each(rows)('%s inside DATA: exactly one reply, 550 5.5.2, nothing queued', async (_name, fakeEnd) => {
    const before = t.store.events.length;
    const c = await openInData();
    c.write(`Subject: smuggle\r\n\r\nhello${fakeEnd}${SMUGGLED}.\r\n`);
    const refused = await c.reply();
    expect(`${refused.code} ${refused.text}`).toBe('550 5.5.2 Bare <LF> or <CR> not allowed, lines must end with <CR><LF>');
    // The session continues in command mode, with a clean transaction. Replies come in order: had the
    // smuggled commands been run, their replies would stand where these are expected.
    await runSteps(c, [['NOOP', 250], ['RCPT TO:<x@example.test>', 503]]);
    expect(t.store.events.slice(before)).toEqual([]);
    c.destroy();
  });

  test.each(rows)('%s alone does not end DATA: no reply until <CRLF>.<CRLF>', async (_name, fakeEnd) => {
    const c = await openInData();
    c.write(`Subject: smuggle\r\n\r\nhello${fakeEnd}`);
    c.write('\r\n.\r\n');
    // Had the fake end ended DATA, its reply would come first and the lone "." line would draw another before NOOP's.
    expect((await c.reply()).code).toBe(550);
    await runSteps(c, [['NOOP', 250]]);
    c.destroy();
  });

  test('byte by byte (every segment boundary): still one refusal and nothing queued', async () => {
    const before = t.store.events.length;
    const c = await openInData();
    c.socket.setNoDelay(true);
    for (const byte of Buffer.from(`Subject: s\r\n\r\nhello\n.\n${SMUGGLED}.\r\n`)) {
      c.write(Buffer.from([byte]));
      await new Promise((r) => setImmediate(r));
    }
    expect((await c.reply()).code).toBe(550);
    await runSteps(c, [['NOOP', 250], ['RCPT TO:<x@example.test>', 503]]);
    expect(t.store.events.slice(before)).toEqual([]);
    c.destroy();
  });

  test('control: a real <CRLF>.<CRLF> followed by pipelined commands is two transactions, as the client asked', async () => {
    const before = t.store.messages.length;
    const c = await openInData();
    c.write(`Subject: first\r\n\r\nhello\r\n.\r\n${SMUGGLED}.\r\n`);
    const codes: number[] = [];
    for (let i = 0; i < 5; i++) codes.push((await c.reply()).code);
    expect(codes).toEqual([250, 250, 250, 354, 250]);
    expect(t.store.messages.slice(before).map((m) => m.subject)).toEqual(['first', 'smuggled']);
    c.destroy();
  });

  test('a lone bare LF in an otherwise fine message is refused too (550 5.5.2), not rewritten', async () => {
    const before = t.store.events.length;
    const c = await openInData();
    c.write('Subject: s\r\n\r\nline one\nline two\r\n.\r\n');
    expect((await c.reply()).text).toMatch(/^5\.5\.2 /);
    expect(t.store.events.slice(before)).toEqual([]);
    expect(t.logs.find((l) => l.reason === 'bare-newline')).toMatchObject({ event: 'ingress.rejected', ip: '127.0.0.1' });
    c.destroy();
  });
});

describe('STARTTLS command injection (CVE-2011-0411 class)', () => {
  const injections: [name: string, injected: string][] = [
    ['MAIL FROM', 'MAIL FROM:<injected@attacker.test>\r\n'],
    ['MAIL + RCPT', 'MAIL FROM:<injected@attacker.test>\r\nRCPT TO:<victim@example.test>\r\n'],
    ['behind 150 NOOPs (past smtp-server\'s 100-command yield)', `${'NOOP\r\n'.repeat(150)}MAIL FROM:<injected@attacker.test>\r\n`],
    ['a partial line', 'MAIL FROM:<injected@att'],
  ];
  test.each(injections)('plaintext %s pipelined behind STARTTLS is discarded', async (_name, injected) => {
    const before = t.store.messages.length;
    const c = await RawClient.open(t.port());
    await runSteps(c, [EHLO]);
    c.write(`STARTTLS\r\n${injected}`);
    const ready = await c.reply();
    expect(ready.code).toBe(220);
    await c.upgrade();
    // Nothing answers the injected commands, inside TLS or out: the first reply in TLS is our NOOP's
    // (an injected command run there would have its reply, or swallow the NOOP, first).
    await runSteps(c, [['NOOP', 250]]);
    // the TLS session starts clean: EHLO required, then MAIL is 250, not "503 nested MAIL"
    await runSteps(c, [
      ['MAIL FROM:<app@clinic.test>', 503],
      EHLO,
      ['MAIL FROM:<app@clinic.test>', 250],
      ['RCPT TO:<patient@example.test>', 250],
      ['DATA', 354],
    ]);
    c.write('Subject: after starttls\r\n\r\nok\r\n.\r\n');
    expect((await c.reply()).code).toBe(250);
    const queued = t.store.messages.slice(before);
    expect(queued.map((m) => [m.sender, m.recipients])).toEqual([['app@clinic.test', ['patient@example.test']]]);
    c.destroy();
  });
});
