// The 220 greeting comes at once on a submission listener (smtp-server alone holds it
// 100 ms), the early-talker check stays available per listener, and the optional
// reverse DNS lookup never stands in front of the greeting (src/ingress/greeting.ts).
//
// "At once" is shown without measuring time: fake timers replace setTimeout and are
// never advanced, so a greeting that waits for any timer never comes.
import { afterEach, describe, expect, test, vi } from 'vitest';
import { hostName, reverseName } from '../../src/ingress/client-name.ts';
import { startDnsStub, type DnsStub, type Zone } from '../helpers/dns-stub.ts';
import { ingressConfig, message, RawClient, startTestIngress, submitOne, testCertificate, type Over, type TestIngress } from './harness.ts';

/** Reverse DNS of the loopback client. */
const PTR_NAME = '1.0.0.127.in-addr.arpa';
/** The client's name, forward-confirmed: it resolves back to 127.0.0.1. */
const CONFIRMED: Zone = { [PTR_NAME]: { PTR: ['app1.clinic.test'] }, 'app1.clinic.test': { A: ['127.0.0.1'] } };

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  // Real timers first: closing the ingress uses them.
  vi.useRealTimers();
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** An ingress whose one listener `submission` has `listener` settings, resolving through `dns` when given. */
async function ingressWith(listener: Over = {}, dns?: DnsStub): Promise<TestIngress> {
  const over = dns ? { delivery: { dns: { servers: [dns.server] } } } : {};
  const t = await startTestIngress({ config: ingressConfig({ listeners: { submission: { host: '127.0.0.1', port: 0, tls: 'starttls', ...listener } } }, over) });
  cleanups.push(() => t.close());
  return t;
}

async function dnsStub(zone: Zone): Promise<DnsStub> {
  const stub = await startDnsStub(zone);
  cleanups.push(() => stub.close());
  return stub;
}

/** Fake setTimeout/clearTimeout from now on, never advanced: whatever waits for a timer waits forever. */
function stopTheClock(): void {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
}

/** The Received field ingress added on top of the queued message, unfolded. */
function receivedOf(body: Buffer): string {
  const header = body.toString('latin1').split('\r\n\r\n')[0] ?? '';
  return /^Received:[^\r\n]*(?:\r\n[ \t][^\r\n]*)*/.exec(header)?.[0].replace(/\r\n[ \t]/g, ' ') ?? '';
}

describe('greeting on a submission listener (greeting_delay_ms 0, the default)', () => {
  test('the 220 greeting arrives without the clock advancing', async () => {
    const t = await ingressWith();
    stopTheClock();
    const client = await RawClient.connect(t.port());
    cleanups.push(async () => client.destroy());
    const greeting = await client.reply();
    expect(greeting.code).toBe(220);
    expect(greeting.text).toMatch(/ESMTP SealRelay$/);
    expect((await client.ehlo()).code).toBe(250);
  }, 10_000);

  test('a client that sends EHLO right after connecting, before the greeting, is served', async () => {
    const t = await ingressWith();
    const client = await RawClient.connect(t.port());
    cleanups.push(async () => client.destroy());
    // Sent before anything was read: the client does not wait for the greeting.
    client.write('EHLO app.clinic.test\r\n');
    expect((await client.reply()).code).toBe(220);
    const ehlo = await client.reply();
    expect(ehlo.code).toBe(250);
    expect(ehlo.lines).toContain('PIPELINING');
    const done = await client.send('app@clinic.test', ['ann@example.test'], message('early'));
    expect(done.code).toBe(250);
    expect(t.store.messages.map((m) => m.subject)).toEqual(['early']);
  });
});

describe('early-talker check (greeting_delay_ms > 0)', () => {
  test('a client that talks before the greeting is refused (smtp-server: 421 "You talk too soon") and disconnected', async () => {
    const t = await ingressWith({ greeting_delay_ms: 300 });
    // The greeting waits for a timer that never fires: the EHLO comes first, whatever the machine's speed.
    stopTheClock();
    const client = await RawClient.connect(t.port());
    cleanups.push(async () => client.destroy());
    client.write('EHLO spam.example\r\n');
    const refused = await client.reply();
    expect(refused.code).toBe(421);
    expect(refused.text).toMatch(/You talk too soon/);
    await client.whenClosed();
    expect(t.store.messages).toEqual([]);
  }, 10_000);

  test('a client that waits gets the greeting after the delay and is served', async () => {
    const t = await ingressWith({ greeting_delay_ms: 50 });
    const { reply, queued } = await submitOne(t, message('patient'));
    expect(reply.code).toBe(250);
    expect(queued.map((m) => m.subject)).toEqual(['patient']);
  });

  test('a reload turns the check on for new connections (no restart: the listener itself is unchanged)', async () => {
    const t = await ingressWith();
    t.ingress.reload(ingressConfig({ listeners: { submission: { host: '127.0.0.1', port: 0, tls: 'starttls', greeting_delay_ms: 300 } } }), testCertificate(), new Map());
    stopTheClock();
    const client = await RawClient.connect(t.port());
    cleanups.push(async () => client.destroy());
    client.write('EHLO spam.example\r\n');
    expect((await client.reply()).code).toBe(421);
  }, 10_000);

  test('greeting_delay_ms is checked: a negative or fractional value is a config error', () => {
    const bad = (v: unknown) => () => ingressConfig({ listeners: { submission: { port: 0, greeting_delay_ms: v } } });
    expect(bad(-1)).toThrow(/greeting_delay_ms/);
    expect(bad(1.5)).toThrow(/greeting_delay_ms/);
  });
});

describe('reverse DNS of the client', () => {
  test('on: the Received header carries the forward-confirmed name from DNS', async () => {
    const stub = await dnsStub(CONFIRMED);
    const t = await ingressWith({ reverse_dns: true }, stub);
    const { reply, queued } = await submitOne(t, message('named'));
    expect(reply.code).toBe(250);
    expect(receivedOf(queued[0]!.body)).toMatch(/^Received: from app\.ingress\.test \(app1\.clinic\.test \[127\.0\.0\.1\]\) by /);
    expect(stub.queries.map((q) => `${q.type} ${q.name}`)).toEqual(expect.arrayContaining([`PTR ${PTR_NAME}`, 'A app1.clinic.test']));
  });

  test('on: MAIL FROM waits for the lookup, so a client that pipelines its whole transaction at connect gets the name too', async () => {
    const stub = await dnsStub(CONFIRMED);
    const t = await ingressWith({ reverse_dns: true }, stub);
    const client = await RawClient.connect(t.port());
    cleanups.push(async () => client.destroy());
    // RFC 2920: one group up to DATA, sent before the greeting; MAIL arrives while the lookup is in flight.
    client.write('EHLO app.ingress.test\r\nMAIL FROM:<app@clinic.test>\r\nRCPT TO:<ann@example.test>\r\nDATA\r\n');
    expect([(await client.reply()).code, (await client.reply()).code, (await client.reply()).code]).toEqual([220, 250, 250]);
    expect(stub.queries.map((q) => `${q.type} ${q.name}`)).toContain('A app1.clinic.test');
    expect((await client.reply()).code).toBe(250);
    expect((await client.reply()).code).toBe(354);
    client.write(`${message('pipelined')}.\r\n`);
    expect((await client.reply()).code).toBe(250);
    expect(receivedOf(t.store.messages[0]!.body)).toMatch(/^Received: from app\.ingress\.test \(app1\.clinic\.test \[127\.0\.0\.1\]\) by /);
  });

  test('on: a PTR name that does not resolve back to the client is not used', async () => {
    const stub = await dnsStub({ [PTR_NAME]: { PTR: ['bank.example.test'] }, 'bank.example.test': { A: ['192.0.2.1'] } });
    const t = await ingressWith({ reverse_dns: true }, stub);
    const { reply, queued } = await submitOne(t, message('unconfirmed'));
    expect(reply.code).toBe(250);
    expect(receivedOf(queued[0]!.body)).toMatch(/^Received: from app\.ingress\.test \(\[127\.0\.0\.1\]\) by /);
    expect(stub.queries.map((q) => `${q.type} ${q.name}`)).toContain('A bank.example.test');
  });

  test('on, DNS never answers: the greeting still arrives without the clock advancing', async () => {
    const stub = await dnsStub({ [PTR_NAME]: { failure: 'timeout' } });
    // A bound far beyond this test's own timeout: only a lookup beside the greeting lets it pass.
    const t = await ingressWith({ reverse_dns: true, reverse_dns_timeout_ms: 60_000 }, stub);
    stopTheClock();
    const client = await RawClient.connect(t.port());
    cleanups.push(async () => client.destroy());
    expect((await client.reply()).code).toBe(220);
    expect((await client.ehlo()).code).toBe(250);
  }, 10_000);

  test('on, DNS never answers: the session goes on after reverse_dns_timeout_ms, without a name', async () => {
    const stub = await dnsStub({ [PTR_NAME]: { failure: 'timeout' } });
    const t = await ingressWith({ reverse_dns: true, reverse_dns_timeout_ms: 200 }, stub);
    const { reply, queued } = await submitOne(t, message('unnamed'));
    expect(reply.code).toBe(250);
    expect(receivedOf(queued[0]!.body)).toMatch(/^Received: from app\.ingress\.test \(\[127\.0\.0\.1\]\) by /);
    expect(stub.queries.map((q) => `${q.type} ${q.name}`)).toContain(`PTR ${PTR_NAME}`);
  });

  test('off (the default): no lookup at all, and no name in the Received header', async () => {
    const stub = await dnsStub(CONFIRMED);
    const t = await ingressWith({}, stub);
    const { reply, queued } = await submitOne(t, message('plain'));
    expect(reply.code).toBe(250);
    expect(receivedOf(queued[0]!.body)).toMatch(/^Received: from app\.ingress\.test \(\[127\.0\.0\.1\]\) by /);
    expect(stub.queries.filter((q) => q.type === 'PTR')).toEqual([]);
  });

  test('the PTR query names of IPv4 and IPv6 addresses (RFC 3596 §2.5)', () => {
    expect(reverseName('127.0.0.1')).toBe(PTR_NAME);
    expect(reverseName('2001:db8::567:89ab')).toBe('b.a.9.8.7.6.5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa');
    expect(reverseName('::1')).toBe(`1${'.0'.repeat(31)}.ip6.arpa`);
    expect(reverseName('64:ff9b::192.0.2.33')).toBe(reverseName('64:ff9b::c000:221'));
  });

  test('only plain host names are taken from a PTR record', () => {
    expect(hostName('App1.Clinic.TEST.')).toBe('app1.clinic.test');
    expect(hostName('mail-1.example.org')).toBe('mail-1.example.org');
    for (const bad of ['', 'evil\r\nX-Injected: 1', 'a b.example', '-lead.example', 'under_score.example', '192.0.2.1', `${'a'.repeat(64)}.example`]) {
      expect(hostName(bad)).toBeNull();
    }
  });
});
