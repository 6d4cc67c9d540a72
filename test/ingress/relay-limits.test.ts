// Relay control (no open relay) and the RFC 5321 §4.5.3 limits, as tables.
import { describe, expect, test, vi } from 'vitest';
import { ingressConfig, message, RawClient, runSteps, startTestIngress, testUsers, type Over, type Step } from './harness.ts';

const EHLO: Step = ['EHLO app.clinic.test', 250];

/** A message of exactly `size` bytes (as counted after dot-unstuffing), in 100-byte lines. */
function filler(size: number): string {
  let text = 'Subject: s\r\n\r\n';
  while (size - text.length > 100) text += `${'x'.repeat(98)}\r\n`;
  return text + `${'y'.repeat(size - text.length - 2)}\r\n`;
}

async function withIngress<T>(ingress: Over, fn: (t: Awaited<ReturnType<typeof startTestIngress>>) => Promise<T>): Promise<T> {
  const t = await startTestIngress({ config: ingressConfig(ingress), users: await testUsers({ app1: { password: 'pw' } }) });
  try {
    return await fn(t);
  } finally {
    await t.close();
  }
}

describe('relay control: authenticated, or from relay_networks', () => {
  const rows: [title: string, ingress: Over, steps: Step[]][] = [
    ['default relay_networks (loopback): MAIL/RCPT without AUTH → 250', {}, [EHLO, ['MAIL FROM:<a@clinic.test>', 250], ['RCPT TO:<p@example.test>', 250]]],
    ['relay_networks excludes 127.0.0.1, no AUTH → 554 5.7.1', { relay_networks: ['10.0.0.0/8', '2001:db8::/32'] }, [EHLO, ['MAIL FROM:<a@clinic.test>', 554, /^5\.7\.1 Relay access denied$/], ['RCPT TO:<p@example.test>', 503]]],
    ['relay_networks empty, no AUTH → 554 5.7.1', { relay_networks: [] }, [EHLO, ['MAIL FROM:<>', 554]]],
    ['relay_networks as IPv4-mapped IPv6 rule matches 127.0.0.1', { relay_networks: ['::ffff:127.0.0.0/104'] }, [EHLO, ['MAIL FROM:<a@clinic.test>', 250]]],
    ['RSET after refusal: still refused', { relay_networks: [] }, [EHLO, ['MAIL FROM:<a@clinic.test>', 554], ['RSET', 250], ['MAIL FROM:<a@clinic.test>', 554]]],
  ];
  test.each(rows)('%s', (_title, ingress, steps) =>
    withIngress(ingress, async (t) => {
      const c = await RawClient.open(t.port());
      await runSteps(c, steps);
      c.destroy();
    }),
  );

  test('a denial is logged as ingress.relay_denied with the client IP', () =>
    withIngress({ relay_networks: [] }, async (t) => {
      const c = await RawClient.open(t.port());
      await runSteps(c, [EHLO, ['MAIL FROM:<a@clinic.test>', 554]]);
      c.destroy();
      expect(t.logs.find((l) => l.event === 'ingress.relay_denied')).toMatchObject({ ip: '127.0.0.1', sender: 'a@clinic.test', listener: 'submission' });
      expect(t.store.messages).toHaveLength(0);
    }));
});

describe('RFC 5321 §4.5.3.1.8/.10: recipients', () => {
  test('beyond max_recipients → 452 4.5.3; a repeated recipient does not count; the message keeps the accepted ones', () =>
    withIngress({ max_recipients: 2 }, async (t) => {
      const c = await RawClient.open(t.port());
      await runSteps(c, [
        EHLO,
        ['MAIL FROM:<a@clinic.test>', 250],
        ['RCPT TO:<one@example.test>', 250],
        ['RCPT TO:<two@example.test>', 250],
        ['RCPT TO:<three@example.test>', 452, /^4\.5\.3 Too many recipients/],
        ['RCPT TO:<ONE@example.test>', 250],
        ['DATA', 354],
      ]);
      c.write(message() + '.\r\n');
      expect((await c.reply()).code).toBe(250);
      expect(t.store.messages[0]?.recipients).toHaveLength(2);
      c.destroy();
    }));
});

describe('RFC 1870 SIZE and RFC 5321 §4.5.3.1.6 line length', () => {
  test('SIZE is advertised with max_message_bytes', () =>
    withIngress({ max_message_bytes: 5000 }, async (t) => {
      const c = await RawClient.open(t.port());
      expect((await c.ehlo()).lines).toContain('SIZE 5000');
      c.destroy();
    }));

  test('MAIL FROM with SIZE= above the limit → 552 before any data', () =>
    withIngress({ max_message_bytes: 5000 }, async (t) => {
      const c = await RawClient.open(t.port());
      await runSteps(c, [EHLO, ['MAIL FROM:<a@clinic.test> SIZE=5001', 552], ['MAIL FROM:<a@clinic.test> SIZE=4000', 250]]);
      c.destroy();
    }));

  const rows: [title: string, ingress: Over, body: string, code: number, text: RegExp | null, queued: number][] = [
    ['message at the size limit → 250', { max_message_bytes: 2000 }, filler(2000), 250, /^2\.0\.0 Ok: queued as/, 1],
    ['message over the size limit → 552 5.3.4, nothing queued', { max_message_bytes: 2000 }, filler(2001), 552, /^5\.3\.4 Message size exceeds fixed maximum message size of 2000 bytes$/, 0],
    ['much larger than the limit → 552 5.3.4', { max_message_bytes: 2000 }, `Subject: s\r\n\r\n${'x\r\n'.repeat(100_000)}`, 552, /^5\.3\.4/, 0],
    ['line of 1000 bytes including CRLF → 250', {}, `Subject: s\r\n\r\n${'x'.repeat(998)}\r\n`, 250, null, 1],
    ['line of 1001 bytes including CRLF → 250 (repaired before it is queued)', {}, `Subject: s\r\n\r\n${'x'.repeat(999)}\r\n`, 250, null, 1],
    ['line at the default max_line_bytes (64 KiB) → 250', {}, `Subject: s\r\n\r\n${'x'.repeat(65534)}\r\n`, 250, null, 1],
    ['line over the default max_line_bytes → 552 5.6.0, nothing queued', {}, `Subject: s\r\n\r\n${'x'.repeat(65535)}\r\n`, 552, /^5\.6\.0 Message line too long \(limit 65536 bytes including CRLF\)$/, 0],
    ['max_line_bytes lowered → longer lines refused', { max_line_bytes: 4000 }, `Subject: s\r\n\r\n${'x'.repeat(3999)}\r\n`, 552, /^5\.6\.0 Message line too long \(limit 4000 bytes/, 0],
  ];
  test.each(rows)('%s', (_title, ingress, body, code, text, queued) =>
    withIngress(ingress, async (t) => {
      const c = await RawClient.open(t.port());
      await runSteps(c, [EHLO, ['MAIL FROM:<a@clinic.test>', 250], ['RCPT TO:<p@example.test>', 250], ['DATA', 354]]);
      c.write(body + '.\r\n');
      const reply = await c.reply();
      expect(reply.code).toBe(code);
      if (text) expect(reply.text).toMatch(text);
      expect(t.store.messages).toHaveLength(queued);
      // the session goes on: a refused message is not the end of the connection
      await runSteps(c, [['NOOP', 250]]);
      c.destroy();
      if (queued === 0) expect(t.logs.find((l) => l.event === 'ingress.rejected')).toMatchObject({ ip: '127.0.0.1', recipients: 1 });
    }),
  );
});

describe('connections per client IP', () => {
  test('beyond max_connections_per_ip → 421 4.7.0 and closed; a slot frees when a client leaves', () =>
    withIngress({ max_connections_per_ip: 2 }, async (t) => {
      const a = await RawClient.open(t.port());
      const b = await RawClient.open(t.port());
      const c = await RawClient.connect(t.port());
      const refused = await c.reply();
      expect(refused.code).toBe(421);
      expect(refused.text).toMatch(/^4\.7\.0 Too many connections/);
      await c.whenClosed();
      expect(t.logs.find((l) => l.reason === 'too_many_connections')).toMatchObject({ event: 'ingress.rejected', ip: '127.0.0.1' });
      await a.quit();
      // The slot is free once ingress has closed a's session: a new client gets in (asked until it does).
      const d = await vi.waitFor(() => RawClient.open(t.port()), { timeout: 5000, interval: 20 });
      await runSteps(d, [EHLO]);
      b.destroy();
      d.destroy();
    }));

  test('the limit is shared between listeners', async () => {
    const config = ingressConfig({
      max_connections_per_ip: 1,
      listeners: { one: { host: '127.0.0.1', port: 0, tls: 'starttls' }, two: { host: '127.0.0.1', port: 0, tls: 'starttls' } },
    });
    const t = await startTestIngress({ config });
    try {
      const a = await RawClient.open(t.port('one'));
      const b = await RawClient.connect(t.port('two'));
      expect((await b.reply()).code).toBe(421);
      a.destroy();
      b.destroy();
    } finally {
      await t.close();
    }
  });
});
