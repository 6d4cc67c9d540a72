// Hostile and unusual MAIL/RCPT commands, with exact bytes over raw sockets:
// invalid UTF-8, 8-bit addresses without SMTPUTF8, quoted local parts, unknown
// parameters, domains no MX lookup can serve, <postmaster>, and the cap on
// connections across all clients.
import { afterAll, beforeAll, describe, expect, test, vi } from 'vitest';
import { ingressConfig, RawClient, runSteps, startTestIngress, type Step } from './harness.ts';

const EHLO: Step = ['EHLO app.clinic.test', 250];
const MAIL: Step = ['MAIL FROM:<app@clinic.test>', 250];

let t: Awaited<ReturnType<typeof startTestIngress>>;
beforeAll(async () => {
  t = await startTestIngress({
    config: ingressConfig({ postmaster: 'it-team@clinic.test' }, { delivery: { routes: { localhost: '127.0.0.1:2525', '[192.0.2.7]': '127.0.0.1:2526' } } }),
  });
});
afterAll(() => t.close());

/** Sends one message to `rcpt` (raw bytes) and returns the queued envelope's recipients. */
async function queuedRecipients(steps: readonly (Step | Buffer)[]): Promise<readonly string[]> {
  const before = t.store.messages.length;
  const c = await RawClient.open(t.port());
  for (const step of steps) {
    if (Buffer.isBuffer(step)) {
      c.write(step);
      expect((await c.reply()).code).toBe(250);
    } else await runSteps(c, [step]);
  }
  await runSteps(c, [['DATA', 354]]);
  c.write('Subject: s\r\n\r\nbody\r\n.\r\n');
  expect((await c.reply()).code).toBe(250);
  await c.quit();
  expect(t.store.messages.length).toBe(before + 1);
  return t.store.messages.at(-1)!.recipients;
}

describe('invalid UTF-8 and 8-bit addresses', () => {
  test('a command line with invalid UTF-8 is refused 500 5.5.2 before it is read; nothing is rewritten', async () => {
    const c = await RawClient.open(t.port());
    await runSteps(c, [EHLO, MAIL]);
    // "jürgen" in Latin-1: 0xFC is not valid UTF-8.
    c.write(Buffer.concat([Buffer.from('RCPT TO:<j'), Buffer.from([0xfc]), Buffer.from('rgen@tls13.test>\r\n')]));
    const r = await c.reply();
    expect(`${r.code} ${r.text}`).toBe('500 5.5.2 Invalid UTF-8 in command');
    // the session goes on; the transaction has no recipient
    await runSteps(c, [['DATA', 503]]);
    await c.quit();
  });

  test('invalid UTF-8 in MAIL FROM and in EHLO is refused the same way', async () => {
    const c = await RawClient.open(t.port());
    c.write(Buffer.from('EHLO h\xe9llo\r\n', 'latin1'));
    expect((await c.reply()).code).toBe(500);
    await runSteps(c, [EHLO]);
    c.write(Buffer.from('MAIL FROM:<a\xff@clinic.test>\r\n', 'latin1'));
    expect((await c.reply()).text).toBe('5.5.2 Invalid UTF-8 in command');
    await c.quit();
  });

  test('an 8-bit address without SMTPUTF8 gets 553 5.6.7', async () => {
    const c = await RawClient.open(t.port());
    await runSteps(c, [EHLO]);
    c.write(Buffer.from('MAIL FROM:<jürgen@clinic.test>\r\n', 'utf8'));
    expect(await c.reply()).toMatchObject({ code: 553, text: expect.stringMatching(/^5\.6\.7 /) });
    await runSteps(c, [MAIL]);
    c.write(Buffer.from('RCPT TO:<jürgen@tls13.test>\r\n', 'utf8'));
    expect(await c.reply()).toMatchObject({ code: 553, text: expect.stringMatching(/^5\.6\.7 /) });
    c.write(Buffer.from('RCPT TO:<anna@bücher.test>\r\n', 'utf8'));
    expect((await c.reply()).code).toBe(553);
    await c.quit();
  });

  test('with SMTPUTF8 an 8-bit address is queued exactly as sent', async () => {
    const rcpts = await queuedRecipients([EHLO, ['MAIL FROM:<app@clinic.test> SMTPUTF8', 250], Buffer.from('RCPT TO:<jürgen@bücher.test>\r\n', 'utf8')]);
    expect(rcpts).toEqual(['jürgen@bücher.test']);
  });
});

describe('address syntax (RFC 5321 §4.1.2)', () => {
  test('a quoted local part is accepted and kept quoted', async () => {
    expect(await queuedRecipients([EHLO, MAIL, ['RCPT TO:<"x y"@example.org>', 250]])).toEqual(['"x y"@example.org']);
  });

  test('a quoted local part holding a quote, a backslash and ">" survives', async () => {
    expect(await queuedRecipients([EHLO, MAIL, ['RCPT TO:<"a\\"b\\\\c>d"@example.org>', 250]])).toEqual(['"a\\"b\\\\c>d"@example.org']);
  });

  test('a needlessly quoted dot-string is the same mailbox, written plainly', async () => {
    expect(await queuedRecipients([EHLO, MAIL, ['RCPT TO:<"john.doe"@example.org>', 250]])).toEqual(['john.doe@example.org']);
  });

  test('a source route is accepted and ignored; the domain is kept as sent', async () => {
    expect(await queuedRecipients([EHLO, MAIL, ['RCPT TO:<@hop1.test,@hop2.test:ann@xn--bcher-kva.test>', 250]])).toEqual(['ann@xn--bcher-kva.test']);
  });

  test.each([
    ['no brackets', 'RCPT TO:ann@example.org'],
    ['unterminated quote', 'RCPT TO:<"x y@example.org>'],
    ['two @ outside quotes', 'RCPT TO:<a@b@example.org>'],
    ['leading dot', 'RCPT TO:<.ann@example.org>'],
    ['double dot', 'RCPT TO:<an..n@example.org>'],
    ['empty label', 'RCPT TO:<ann@example..org>'],
    ['hyphen at label end', 'RCPT TO:<ann@example-.org>'],
    ['control character', 'RCPT TO:<an\x01n@example.org>'],
    ['general address literal', 'RCPT TO:<ann@[tag:content]>'],
    ['bad IPv4 literal', 'RCPT TO:<ann@[300.1.1.1]>'],
    ['xtext hiding CRLF', 'RCPT TO:<ann@example.org> ORCPT=rfc822;a+0D+0Ab'],
  ])('%s → 501', async (_name, command) => {
    const c = await RawClient.open(t.port());
    await runSteps(c, [EHLO, MAIL, [command, 501]]);
    await c.quit();
  });
});

describe('MAIL and RCPT parameters (RFC 5321 §4.1.1.11)', () => {
  test.each([
    ['MAIL FROM:<app@clinic.test> XFOO=1', 'XFOO'],
    ['MAIL FROM:<app@clinic.test> BODY=8BITMIME FROB', 'FROB'],
    // REQUIRETLS (RFC 8689) is offered over TLS: test/ingress/requiretls.test.ts
  ])('%s → 555 5.5.4 naming %s', async (command, keyword) => {
    const c = await RawClient.open(t.port());
    await runSteps(c, [EHLO]);
    const r = await c.cmd(command);
    expect(`${r.code} ${r.text}`).toBe(`555 5.5.4 Unsupported parameter ${keyword}`);
    await c.quit();
  });

  test('an unknown RCPT parameter → 555 5.5.4', async () => {
    const c = await RawClient.open(t.port());
    await runSteps(c, [EHLO, MAIL]);
    expect(await c.cmd('RCPT TO:<ann@example.org> XRCPT=1')).toMatchObject({ code: 555, text: '5.5.4 Unsupported parameter XRCPT' });
    await c.quit();
  });

  test('SIZE, BODY, SMTPUTF8, RET, ENVID, AUTH and NOTIFY/ORCPT are accepted', async () => {
    const rcpts = await queuedRecipients([
      EHLO,
      ['MAIL FROM:<app@clinic.test> SIZE=100 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=abc+2Bdef AUTH=<>', 250],
      ['RCPT TO:<ann@example.org> NOTIFY=FAILURE,DELAY ORCPT=rfc822;ann@example.org', 250],
    ]);
    expect(rcpts).toEqual(['ann@example.org']);
  });
});

describe('recipient domains no MX lookup can serve', () => {
  test.each([
    ['an IPv4 address literal', 'ann@[192.0.2.1]', /address literals/],
    ['an IPv6 address literal', 'ann@[IPv6:2001:db8::1]', /address literals/],
    ['a bare IP', 'ann@192.0.2.1', /bare IP/],
    ['a localhost subdomain', 'ann@mail.localhost', /localhost/],
  ])('%s is refused at RCPT with 550 5.1.2 and why', async (_name, rcpt, why) => {
    const c = await RawClient.open(t.port());
    await runSteps(c, [EHLO, MAIL]);
    const r = await c.cmd(`RCPT TO:<${rcpt}>`);
    expect(r.code).toBe(550);
    expect(r.text).toMatch(/^5\.1\.2 /);
    expect(r.text).toMatch(why);
    expect(r.text).toMatch(/delivery\.routes/);
    await c.quit();
  });

  test('a domain that a route names is accepted (localhost, an address literal)', async () => {
    expect(await queuedRecipients([EHLO, MAIL, ['RCPT TO:<ann@localhost>', 250], ['RCPT TO:<bob@[192.0.2.7]>', 250]])).toEqual(['ann@localhost', 'bob@[192.0.2.7]']);
  });
});

describe('<postmaster> (RFC 5321 §4.5.1)', () => {
  test('is accepted, in any case, and queued for ingress.postmaster', async () => {
    expect(await queuedRecipients([EHLO, MAIL, ['RCPT TO:<Postmaster>', 250]])).toEqual(['it-team@clinic.test']);
  });

  test('without ingress.postmaster it is refused with 550 5.1.1 naming the setting', async () => {
    const other = await startTestIngress();
    try {
      const c = await RawClient.open(other.port());
      await runSteps(c, [EHLO, MAIL]);
      const r = await c.cmd('RCPT TO:<postmaster>');
      expect(`${r.code} ${r.text}`).toBe('550 5.1.1 <postmaster>: no postmaster address is configured here (ingress.postmaster)');
      await c.quit();
      expect(other.store.messages).toEqual([]);
    } finally {
      await other.close();
    }
  });

  test('a domainless recipient other than postmaster is a syntax error', async () => {
    const c = await RawClient.open(t.port());
    await runSteps(c, [EHLO, MAIL, ['RCPT TO:<root>', 501]]);
    await c.quit();
  });
});

describe('connections across all clients (ingress.max_connections)', () => {
  test('past the cap a new connection gets 421 4.7.0; a slot freed is usable again', async () => {
    const capped = await startTestIngress({ config: ingressConfig({ max_connections: 2, max_connections_per_ip: 10 }) });
    try {
      const a = await RawClient.open(capped.port());
      const b = await RawClient.open(capped.port());
      const c = await RawClient.connect(capped.port());
      const refused = await c.reply();
      expect(`${refused.code} ${refused.text}`).toBe('421 4.7.0 Too many connections, try again later');
      await c.whenClosed();
      expect(capped.logs.some((l) => l.event === 'ingress.rejected' && l.reason === 'too_many_connections_total')).toBe(true);
      await a.quit();
      // The slot is given back when ingress has closed a's session: a new client gets in (asked until it does).
      const d = await vi.waitFor(() => RawClient.open(capped.port()), { timeout: 5000, interval: 20 });
      await runSteps(d, [EHLO]);
      await d.quit();
      await b.quit();
    } finally {
      await capped.close();
    }
  });
});
