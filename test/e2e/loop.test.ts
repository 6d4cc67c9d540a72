// Mail loops end, and the sender hears of it once. A route back to the relay's own
// listener bounces before anything is sent (5.4.6 "loops back to myself"); a loop
// through a misconfigured forwarder the relay cannot see by address ends at ingress
// (our own stamp, or the hop limit) and bounces once; a message already queued with
// more hops than ingress.max_hops bounces (5.4.6) instead of travelling on.
import { afterEach, expect, it } from 'vitest';
import { startMx, startMxSet, type MxSet, type StartedMx } from '../helpers/mx.ts';
import { queueIdOf, startTestRelay, submit, testConfig, type TestRelay } from '../helpers/relay.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { newQueueId } from '../../src/store/queue-id.ts';

let mxs: MxSet | undefined;
let forwarder: StartedMx | undefined;
let relay: TestRelay | undefined;
afterEach(async () => {
  await relay?.close();
  await forwarder?.close();
  await mxs?.close();
  relay = forwarder = mxs = undefined;
});

const dsnStatus = (raw: Buffer) => /^Status: (\S+)/im.exec(raw.toString('latin1'))?.[1];

/** Messages in the relay's queue, read from its store file. */
async function queued(t: TestRelay): Promise<number> {
  const reader = new SqliteStore(t.config.store.path);
  try {
    return (await reader.listQueue()).length;
  } finally {
    await reader.close();
  }
}

async function until(check: () => Promise<boolean> | boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`never: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

it('a route back to its own listener: bounced 5.4.6 before anything is sent, one DSN, never received from itself', async () => {
  mxs = await startMxSet([{ kind: 'tls13', name: 'mx.clinic.test' }]);
  const config = testConfig({ delivery: { routes: { 'clinic.test': `${mxs.mxs[0]!.host}:${mxs.port}` } } });
  relay = await startTestRelay(config);
  // Its port is known only now (port 0): the operator's mistake, made by reload.
  await relay.relay.reload({ ...config, delivery: { ...config.delivery, routes: { ...config.delivery.routes, 'loop.test': `127.0.0.1:${relay.port}` } } });

  const id = queueIdOf(await submit({ port: relay.port, from: 'app@clinic.test', to: ['pat@loop.test'] }));
  const records = await relay.waitForRecords((r) => r.some((x) => x.sender === '' && x.outcome === 'delivered'));

  const forPat = records.filter((r) => r.recipient === 'pat@loop.test');
  // One record, for the message the app submitted: a copy received back from ourselves would be a second queue id.
  expect(forPat).toHaveLength(1);
  expect(forPat[0]).toMatchObject({ queueId: id, outcome: 'bounced', method: 'none', mx: null, smtp: { code: 554, enhanced: '5.4.6' } });
  expect(forPat[0]!.smtp.response).toContain('mail for loop.test loops back to myself');
  expect(forPat[0]!.smtp.response).toContain(`[127.0.0.1]:${relay.port} is this relay`);

  const mx = mxs.mxs[0]!;
  await mx.waitFor(1);
  expect(mx.received).toHaveLength(1);
  expect(mx.received[0]!.envelope).toEqual({ from: '', to: ['app@clinic.test'] });
  expect(dsnStatus(mx.received[0]!.raw)).toBe('5.4.6');
  expect(records.filter((r) => r.sender === '')).toHaveLength(1);
  await until(async () => (await queued(relay!)) === 0, 'the queue empties');
}, 30_000);

it('a forwarder that sends every message straight back: the loop ends after a bounded number of hops with one DSN', async () => {
  const maxHops = 6;
  mxs = await startMxSet([{ kind: 'tls13', name: 'mx.clinic.test' }]);
  let relayPort = 0;
  let passes = 0;
  const refusals: string[] = [];
  // A misconfigured forwarder: whatever it receives it submits straight back to the relay, headers
  // kept and its own Received on top, and answers the relay with what the relay answered it.
  forwarder = await startMx('plain', {
    name: 'mx.forward.test',
    serverOptions: {
      onData(stream, session, callback) {
        const chunks: Buffer[] = [];
        stream.on('data', (c: Buffer) => chunks.push(c));
        stream.once('end', () => {
          passes++;
          const body = Buffer.concat([Buffer.from(`Received: from relay by mx.forward.test with ESMTP id F${passes}; ${new Date().toUTCString()}\r\n`), ...chunks]);
          const to = session.envelope.rcptTo.map((r) => r.address);
          submit({ port: relayPort, from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '', to, body, tls: false }).then(
            () => callback(null, '2.0.0 forwarded'),
            (err: Error & { responseCode?: number; response?: string }) => {
              refusals.push(err.response ?? err.message);
              callback(Object.assign(new Error(`forwarding failed: ${err.response ?? err.message}`), { responseCode: err.responseCode ?? 451 }));
            },
          );
        });
      },
    },
  });
  const config = testConfig({
    ingress: { max_hops: maxHops },
    delivery: { routes: { 'clinic.test': `${mxs.mxs[0]!.host}:${mxs.port}`, 'forward.test': `${forwarder.host}:${forwarder.port}` } },
  });
  relay = await startTestRelay(config);
  relayPort = relay.port;

  await submit({ port: relay.port, from: 'app@clinic.test', to: ['pat@forward.test'] });
  const records = await relay.waitForRecords((r) => r.some((x) => x.sender === '' && x.outcome === 'delivered'), 20_000);

  // Every pass adds two Received fields (ours and the forwarder's): the limit is reached within max_hops passes.
  expect(passes).toBeGreaterThanOrEqual(1);
  expect(passes).toBeLessThanOrEqual(maxHops);
  // The relay's ingress refused the last pass as a loop (here: its own stamp of a message it is still delivering)...
  expect(refusals).toHaveLength(1);
  expect(refusals[0]).toMatch(/^554 5\.4\.\d/);
  // ...so the last delivery to the forwarder failed permanently, and that alone bounced.
  const bounced = records.filter((r) => r.recipient === 'pat@forward.test' && r.outcome === 'bounced');
  expect(bounced).toHaveLength(1);
  expect(bounced[0]!.smtp.code).toBe(554);
  expect(records.filter((r) => r.recipient === 'pat@forward.test' && r.outcome === 'delivered')).toHaveLength(passes - 1);

  const mx = mxs.mxs[0]!;
  await mx.waitFor(1);
  expect(mx.received).toHaveLength(1);
  expect(mx.received[0]!.envelope).toEqual({ from: '', to: ['app@clinic.test'] });
  expect(records.filter((r) => r.sender === '')).toHaveLength(1);
  await until(async () => (await queued(relay!)) === 0, 'the queue empties');
}, 40_000);

it('a forwarder that queues and sends back later: invisible to the stamp check, ended by the hop limit at ingress', async () => {
  const maxHops = 6;
  let relayPort = 0;
  let relayRef: TestRelay | undefined;
  const replies: string[] = [];
  // This one answers 250 first and forwards once the relay has settled the pass: the relay's
  // queue entry is gone by then, so only the growing count of Received fields can end the loop.
  forwarder = await startMx('plain', { name: 'mx.forward.test' });
  const fw = forwarder;
  const forwarding = (async () => {
    for (let pass = 1; ; pass++) {
      const got = (await fw.waitFor(pass, 20_000))[pass - 1]!;
      await relayRef!.waitForRecords((r) => r.filter((x) => x.recipient === 'pat@forward.test' && x.outcome === 'delivered').length >= pass);
      const body = Buffer.concat([Buffer.from(`${got.receivedHeader}\r\n`), got.raw]);
      try {
        replies.push(await submit({ port: relayPort, from: got.envelope.from, to: got.envelope.to, body, tls: false }));
      } catch (err) {
        replies.push((err as { response?: string }).response ?? String(err));
        return pass;
      }
    }
  })();
  mxs = await startMxSet([{ kind: 'tls13', name: 'mx.clinic.test' }]);
  const config = testConfig({
    ingress: { max_hops: maxHops },
    delivery: { routes: { 'clinic.test': `${mxs.mxs[0]!.host}:${mxs.port}`, 'forward.test': `${fw.host}:${fw.port}` } },
  });
  relay = relayRef = await startTestRelay(config);
  relayPort = relay.port;

  await submit({ port: relay.port, from: 'app@clinic.test', to: ['pat@forward.test'] });
  const passes = await forwarding;
  // Pass k reaches the forwarder with 2k-1 Received fields and comes back with 2k: the 4th (8 > 6) is refused.
  expect(passes).toBe(4);
  expect(replies.slice(0, 3).every((r) => r.includes('queued as'))).toBe(true);
  expect(replies[3]).toMatch(/^554 5\.4\.0 /);
  expect(fw.received).toHaveLength(4);
  // The relay delivered every pass it accepted and holds nothing; the refused one stays with the forwarder.
  await until(async () => (await queued(relay!)) === 0, 'the queue empties');
  expect((await relay.records()).filter((r) => r.outcome !== 'delivered')).toEqual([]);
  expect(mxs.mxs[0]!.received).toHaveLength(0);
}, 60_000);

it('a message queued with more hops than ingress.max_hops bounces 5.4.6 with one DSN and is never sent', async () => {
  mxs = await startMxSet([
    { kind: 'tls13', name: 'mx.clinic.test' },
    { kind: 'tls13', name: 'mx.far.test' },
  ]);
  const at = (name: string) => `${mxs!.byName(name).host}:${mxs!.port}`;
  const config = testConfig({ ingress: { max_hops: 6 }, delivery: { routes: { 'clinic.test': at('mx.clinic.test'), 'far.test': at('mx.far.test') } } });
  // Queued before the limit was lowered: 7 hops before ours, our stamp on top.
  const received = Array.from({ length: 8 }, (_, i) => `Received: from hop${i}.test by hop${i + 1}.test; Mon, 1 Jan 2024 00:00:00 +0000\r\n`).join('');
  const queueId = newQueueId();
  const writer = new SqliteStore(config.store.path);
  await writer.enqueue({
    queueId,
    sender: 'app@clinic.test',
    recipients: ['pat@far.test'],
    body: Buffer.from(`${received}From: <app@clinic.test>\r\nTo: <pat@far.test>\r\nSubject: looped\r\n\r\nReceived: in the body, not counted\r\n`),
    messageId: null,
    subject: 'looped',
    clientIp: '127.0.0.1',
    authUser: null,
    receivedAt: Date.now(),
  });
  await writer.close();

  relay = await startTestRelay(config);
  const records = await relay.waitForRecords((r) => r.some((x) => x.sender === '' && x.outcome === 'delivered'));
  const forPat = records.filter((r) => r.recipient === 'pat@far.test');
  expect(forPat).toHaveLength(1);
  expect(forPat[0]).toMatchObject({ queueId, outcome: 'bounced', method: 'none', smtp: { code: 554, enhanced: '5.4.6' } });
  expect(forPat[0]!.smtp.response).toMatch(/^Too many hops: the message travelled 7 hops .*ingress\.max_hops is 6/);

  expect(mxs.byName('mx.far.test').received).toHaveLength(0);
  const dsns = await mxs.byName('mx.clinic.test').waitFor(1);
  expect(dsns).toHaveLength(1);
  expect(dsns[0]!.envelope).toEqual({ from: '', to: ['app@clinic.test'] });
  expect(dsnStatus(dsns[0]!.raw)).toBe('5.4.6');
  await until(async () => (await queued(relay!)) === 0, 'the queue empties');
}, 30_000);

it('exactly max_hops hops is still delivered', async () => {
  mxs = await startMxSet([{ kind: 'tls13', name: 'mx.far.test' }]);
  const config = testConfig({ ingress: { max_hops: 6 }, delivery: { routes: { 'far.test': `${mxs.mxs[0]!.host}:${mxs.port}` } } });
  relay = await startTestRelay(config);
  const received = Array.from({ length: 6 }, (_, i) => `Received: from hop${i}.test by hop${i + 1}.test; Mon, 1 Jan 2024 00:00:00 +0000\r\n`).join('');
  const body = `${received}From: <app@clinic.test>\r\nTo: <pat@far.test>\r\nSubject: six hops\r\n\r\nhello\r\n`;
  await submit({ port: relay.port, from: 'app@clinic.test', to: ['pat@far.test'], body });
  await relay.waitForRecords((r) => r.some((x) => x.recipient === 'pat@far.test' && x.outcome === 'delivered'));
  expect(mxs.mxs[0]!.received).toHaveLength(1);
}, 30_000);
