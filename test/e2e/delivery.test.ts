// Delivery behaviour end to end: MX order and fallback, implicit and null MX,
// static routes, retries after 4xx, a peer that drops mid-DATA, bounces (DSN
// with headers, never the body), one transaction per destination, connection reuse.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log.ts';
import { startRelay } from '../../src/relay.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { startDnsStub, type DnsStub } from '../helpers/dns-stub.ts';
import { allocLoopbackIp, startMxSet, type MxSet } from '../helpers/mx.ts';
import { madeSince, queueIdsIn } from '../helpers/queue-ids.ts';
import { logCapture, queueIdOf, startTestRelay, submit, testConfig, type TestRelay } from '../helpers/relay.ts';

const SECRET_BODY = 'lab result: glucose 5.4 mmol/L (SECRET-BODY-MARKER)';

describe('delivery', () => {
  let dns: DnsStub;
  let mxs: MxSet;
  let relay: TestRelay;
  const deadIp = allocLoopbackIp(); // nothing listens here: connection refused

  beforeAll(async () => {
    mxs = await startMxSet([
      { kind: 'tls13', name: 'mx.good.test', rejectRecipients: ['nobody@good.test', 'nobody@two.test'] },
      { kind: 'greylist', name: 'mx.grey.test' },
      { kind: 'drop-mid-data', name: 'mx.drop.test' },
      { kind: 'tls13', name: 'mx.sender.test' },
      { kind: 'tls12', name: 'mx.backup.test' },
      // The address of nullmx.test itself: a relay that ignored its null MX would connect here.
      { kind: 'tls13', name: 'mx.nullmx-address.test' },
    ]);
    const ip = (name: string) => mxs.byName(name).host;
    dns = await startDnsStub({
      'good.test': { MX: [{ preference: 10, exchange: 'mx.good.test' }] },
      'two.test': { MX: [{ preference: 10, exchange: 'mx.good.test' }] },
      'mx.good.test': { A: [ip('mx.good.test')] },
      'grey.test': { MX: [{ preference: 10, exchange: 'mx.grey.test' }] },
      'mx.grey.test': { A: [ip('mx.grey.test')] },
      'drop.test': { MX: [{ preference: 10, exchange: 'mx.drop.test' }] },
      'mx.drop.test': { A: [ip('mx.drop.test')] },
      'hospital.test': { MX: [{ preference: 5, exchange: 'mx.sender.test' }] },
      'mx.sender.test': { A: [ip('mx.sender.test')] },
      // Primary MX is dead; the relay must go on to the backup at preference 20.
      'fallback.test': { MX: [{ preference: 20, exchange: 'mx.backup.test' }, { preference: 10, exchange: 'mx.dead.test' }] },
      'mx.dead.test': { A: [deadIp] },
      'mx.backup.test': { A: [ip('mx.backup.test')] },
      // No MX at all: the domain's own address is the implicit MX (RFC 5321 §5.1).
      'implicit.test': { A: [ip('mx.backup.test')] },
      // RFC 7505: this domain accepts no mail (its address record must not be used as an implicit MX).
      'nullmx.test': { MX: [{ preference: 0, exchange: '.' }], A: [ip('mx.nullmx-address.test')] },
    });
    relay = await startTestRelay(
      testConfig({
        delivery: { port: mxs.port, dns: { servers: [dns.server] }, routes: {}, retry: { first_seconds: 0.3, max_seconds: 0.5 } },
      }),
    );
  }, 30_000);

  afterAll(async () => {
    await relay?.close();
    await mxs?.close();
    await dns?.close();
  });

  const send = (to: string[], from = 'app@hospital.test', extra = '') =>
    submit({ port: relay.port, from, to, body: `From: <${from}>\r\nSubject: results${extra}\r\n\r\n${SECRET_BODY}\r\n` });

  it('one transaction carries every recipient of a domain; RCPT results are per recipient; 5xx bounces with a DSN', async () => {
    const id = queueIdOf(await send(['a@good.test', 'b@good.test', 'nobody@good.test', 'c@two.test']));
    const records = await relay.waitForRecords((r) => r.filter((x) => x.queueId === id).length === 4);
    const mine = records.filter((r) => r.queueId === id);
    const by = (rcpt: string) => mine.find((r) => r.recipient === rcpt)!;
    expect(by('a@good.test')).toMatchObject({ outcome: 'delivered', method: 'tls' });
    expect(by('b@good.test').outcome).toBe('delivered');
    expect(by('nobody@good.test')).toMatchObject({ outcome: 'bounced', smtp: { code: 550, enhanced: '5.1.1' } });
    expect(by('c@two.test').outcome).toBe('delivered');
    const good = mxs.byName('mx.good.test').received.filter((m) => m.raw.includes(SECRET_BODY) && m.envelope.to.some((t) => t.endsWith('@good.test')));
    // a@ and b@ arrived in one transaction (nobody@ was refused at RCPT).
    expect(good.filter((m) => m.envelope.to.includes('a@good.test'))).toHaveLength(1);
    expect(good.find((m) => m.envelope.to.includes('a@good.test'))!.envelope.to.sort()).toEqual(['a@good.test', 'b@good.test']);

    // The bounce goes to the sender's MX, from the null sender, with headers and reason but no body.
    const sender = mxs.byName('mx.sender.test');
    const [dsn] = await sender.waitFor(1);
    expect(dsn!.envelope).toEqual({ from: '', to: ['app@hospital.test'] });
    const text = dsn!.raw.toString();
    expect(text).toMatch(/Content-Type: multipart\/report;[\s\S]*report-type="?delivery-status/i);
    expect(text).toMatch(/Final-Recipient: rfc822; ?nobody@good\.test/i);
    expect(text).toMatch(/Status: 5\.1\.1/);
    expect(text).toMatch(/Subject: results/);
    expect(text).not.toContain('SECRET-BODY-MARKER');
  });

  it('no bounce is ever sent to the null sender', async () => {
    const before = mxs.byName('mx.sender.test').received.length;
    const known = await queueIdsIn(relay.config.store.path);
    const id = queueIdOf(await send(['nobody@good.test'], ''));
    await relay.waitForRecords((r) => r.some((x) => x.queueId === id && x.outcome === 'bounced'));
    // A bounce would have been queued in the commit of that record: the relay made no message at all.
    expect(madeSince(known, await queueIdsIn(relay.config.store.path), [id])).toEqual([]);
    expect(mxs.byName('mx.sender.test').received.length).toBe(before);
  });

  it('4xx defers with backoff, then the retry delivers (greylisting)', async () => {
    const id = queueIdOf(await send(['x@grey.test']));
    const records = await relay.waitForRecords((r) => r.some((x) => x.queueId === id && x.outcome === 'delivered'), 15_000);
    const mine = records.filter((r) => r.queueId === id);
    expect(mine[0]).toMatchObject({ attempt: 1, outcome: 'deferred', smtp: { code: 451 } });
    expect(mine.at(-1)).toMatchObject({ attempt: mine.length, outcome: 'delivered', method: 'tls' });
  });

  it('a peer that drops the connection mid-DATA: deferred, nothing lost, retried', async () => {
    const id = queueIdOf(await send(['y@drop.test']));
    const records = await relay.waitForRecords((r) => r.filter((x) => x.queueId === id).length >= 2, 15_000);
    const mine = records.filter((r) => r.queueId === id);
    expect(mine.every((r) => r.outcome === 'deferred')).toBe(true);
    expect(mine[0]!.smtp.code).toBeGreaterThanOrEqual(400);
    expect(mine[0]!.smtp.code).toBeLessThan(500);
    expect(mine[1]!.attempt).toBe(2);
    const reader = new SqliteStore(relay.config.store.path);
    const entry = await reader.getQueueEntry(id);
    await reader.close();
    expect(entry?.recipients[0]).toMatchObject({ state: 'queued' });
    expect(entry?.recipients[0]?.lastError).toBeTruthy();
  });

  it('falls back to the next MX by preference when the first refuses connections', async () => {
    const id = queueIdOf(await send(['z@fallback.test']));
    const [rec] = (await relay.waitForRecords((r) => r.some((x) => x.queueId === id))).filter((x) => x.queueId === id);
    expect(rec).toMatchObject({ outcome: 'delivered', mx: { host: 'mx.backup.test', preference: 20 }, tls: { protocol: 'TLSv1.2' } });
  });

  it('uses the implicit MX (A record) when a domain has no MX', async () => {
    const id = queueIdOf(await send(['i@implicit.test']));
    const [rec] = (await relay.waitForRecords((r) => r.some((x) => x.queueId === id))).filter((x) => x.queueId === id);
    expect(rec).toMatchObject({ outcome: 'delivered', mx: { host: 'implicit.test', ip: mxs.byName('mx.backup.test').host } });
  });

  it('null MX bounces at once, without any connection', async () => {
    const id = queueIdOf(await send(['n@nullmx.test']));
    const [rec] = (await relay.waitForRecords((r) => r.some((x) => x.queueId === id))).filter((x) => x.queueId === id);
    // The domain's own address (the implicit MX of a domain without MX) was never dialled.
    expect(mxs.byName('mx.nullmx-address.test').sessions).toEqual([]);
    expect(rec).toMatchObject({ outcome: 'bounced', attempt: 1, mx: null, smtp: { code: 556, enhanced: '5.1.10' } });
  });

  it('reuses one connection for queued mail to the same host', async () => {
    // A relay of its own, with one connection per host that stays open between messages: whether
    // the six come faster than they are delivered or not, they can only share that one connection.
    const own = await startTestRelay(
      testConfig({ delivery: { port: mxs.port, dns: { servers: [dns.server] }, routes: {}, idle_reuse_ms: 60_000, connections_per_host: 1 } }),
    );
    try {
      const ids: string[] = [];
      for (let i = 0; i < 6; i++) ids.push(queueIdOf(await submit({ port: own.port, from: 'app@hospital.test', to: [`r${i}@good.test`] })));
      await own.waitForRecords((r) => ids.every((id) => r.some((x) => x.queueId === id && x.outcome === 'delivered')));
      // The six messages, each on the connection it came in on at the receiver.
      const carried = mxs.byName('mx.good.test').received.filter((m) => m.envelope.to.some((to) => /^r\d@good\.test$/.test(to)));
      expect(carried).toHaveLength(6);
      expect(new Set(carried.map((m) => m.sessionId)).size).toBe(1);
    } finally {
      await own.close();
    }
  });
});

it('logs one JSON line per record, with queue id and outcome, and never the body', async () => {
  const mxs = await startMxSet([{ kind: 'tls13', name: 'mx.log.test' }]);
  const capture = logCapture();
  const config = testConfig({ delivery: { routes: { 'log.test': `${mxs.mxs[0]!.host}:${mxs.port}` } }, logging: { level: 'info' } });
  const relay = await startRelay({ config, logger: createLogger('info', capture.stream) });
  try {
    const id = queueIdOf(await submit({ port: relay.listeners[0]!.port, from: 'a@x.test', to: ['u@log.test'], body: `Subject: secret subject\r\n\r\n${SECRET_BODY}\r\n` }));
    for (let i = 0; i < 100 && !capture.lines.some((l) => l.event === 'delivery.record'); i++) await new Promise((r) => setTimeout(r, 50));
    const rec = capture.lines.find((l) => l.event === 'delivery.record') as { queueId: string; record: { outcome: string; tls: { protocol: string } } };
    expect(rec).toMatchObject({ queueId: id, record: { outcome: 'delivered', tls: { protocol: 'TLSv1.3' } } });
    expect(capture.text()).not.toContain('SECRET-BODY-MARKER');
    expect(capture.text()).not.toContain('secret subject');
  } finally {
    await relay.close();
    await mxs.close();
  }
});
