// Floors other than the default, through the whole relay against real TLS peers:
// `tls.min_version`, `tls.min_cipher_bits` and a rule's `floor`. A peer that has no
// TLS at the floor gets nothing — not in plaintext, not over a weaker handshake — and
// the record says why; a rule's floor applies to its own recipients only.
//
// The floor is enforced twice (README): the handshake offers only what the floor
// accepts (tls-facts.ts tlsClientOptions), and the negotiated facts are judged again
// (connection.ts, `below-floor`). Against a conforming peer the first always decides,
// so these records carry the handshake's refusal: `handshake-failed`, 4.7.5, no TLS.
// The second is reached only if the handshake options and the floor ever disagree.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DeliveryRecord } from '../../src/delivery/record.ts';
import { startDnsStub, type DnsStub, type Zone } from '../helpers/dns-stub.ts';
import { startMxSet, type MxSet, type MxSpec } from '../helpers/mx.ts';
import { queueIdOf, startTestRelay, submit, testConfig, type TestRelay } from '../helpers/relay.ts';
import { HANDSHAKE_FAILURE_ALERT, handshakeRefused, PROTOCOL_VERSION_ALERT } from '../helpers/tls-refusals.ts';

/** A relay with its own MXs, DNS (domain → MX host) and config. */
interface Lab {
  relay: TestRelay;
  mxs: MxSet;
  dns: DnsStub;
  /** Submits one message and waits for a record of each recipient. */
  send(to: string[]): Promise<DeliveryRecord[]>;
  close(): Promise<void>;
}

async function startLab(specs: MxSpec[], domains: Record<string, string>, over: Record<string, unknown>): Promise<Lab> {
  const mxs = await startMxSet(specs);
  const zone: Zone = {};
  for (const mx of mxs.mxs) zone[mx.name] = { A: [mx.host] };
  for (const [domain, exchange] of Object.entries(domains)) zone[domain] = { MX: [{ preference: 10, exchange }] };
  const dns = await startDnsStub(zone);
  // No retry within the test: each record is the first attempt's.
  const delivery = { port: mxs.port, dns: { servers: [dns.server] }, retry: { first_seconds: 3600, max_seconds: 3600 } };
  const relay = await startTestRelay(testConfig({ ...over, delivery }));
  return {
    relay,
    mxs,
    dns,
    async send(to) {
      const id = queueIdOf(await submit({ port: relay.port, from: 'app@hospital.test', to }));
      const records = await relay.waitForRecords((r) => to.every((t) => r.some((x) => x.queueId === id && x.recipient === t)), 20_000);
      return to.map((t) => records.find((x) => x.queueId === id && x.recipient === t)!);
    },
    async close() {
      await relay.close();
      await mxs.close();
      await dns.close();
    },
  };
}

/** What a peer without TLS at the floor comes to: deferred, nothing sent, the handshake's refusal on record. */
function expectRefusedByHandshake(record: DeliveryRecord, alert: string): void {
  expect(record).toMatchObject({ outcome: 'deferred', method: 'none', starttlsOffered: true, tls: null, smtp: { code: 451, enhanced: '4.7.5' } });
  expect(record.smtp.response).toMatch(handshakeRefused(alert));
}

describe('tls.min_version: TLSv1.3', () => {
  let lab: Lab;
  beforeAll(async () => {
    lab = await startLab(
      [
        { kind: 'tls12', name: 'mx.v12.test' },
        { kind: 'tls13', name: 'mx.v13.test' },
      ],
      { 'v12.test': 'mx.v12.test', 'v13.test': 'mx.v13.test' },
      { tls: { min_version: 'TLSv1.3' } },
    );
  }, 60_000);
  afterAll(async () => lab?.close());

  it('a TLS 1.2-only peer is deferred and gets nothing, not even in plaintext (opportunistic)', async () => {
    const [r] = await lab.send(['u@v12.test']);
    expect(r!.decision).toMatchObject({ mode: 'opportunistic' });
    expectRefusedByHandshake(r!, PROTOCOL_VERSION_ALERT);
    // The relay did connect and try STARTTLS; no session, TLS or plaintext, reached DATA.
    const mx = lab.mxs.byName('mx.v12.test');
    expect(mx.sessions.length).toBeGreaterThan(0);
    expect(mx.received).toHaveLength(0);
    expect(mx.data.begun).toBe(0);
    expect(mx.sessions.every((s) => s.transactions === 0)).toBe(true);
  });

  it('a TLS 1.3 peer is delivered over TLS 1.3, as its own socket says', async () => {
    const [r] = await lab.send(['u@v13.test']);
    expect(r).toMatchObject({ outcome: 'delivered', method: 'tls', tls: { protocol: 'TLSv1.3' } });
    const [got] = lab.mxs.byName('mx.v13.test').received;
    expect(got!.tls).toEqual({ protocol: 'TLSv1.3', cipher: r!.tls!.cipher });
  });
});

describe('tls.min_cipher_bits: 256', () => {
  let lab: Lab;
  beforeAll(async () => {
    lab = await startLab(
      [
        // TLS 1.2 with one 128-bit suite.
        { kind: 'tls12', name: 'mx.aes128.test', serverOptions: { ciphers: 'ECDHE-RSA-AES128-GCM-SHA256' } },
        // TLS 1.3 with one 128-bit suite.
        { kind: 'tls13', name: 'mx.aes128-v13.test', serverOptions: { minVersion: 'TLSv1.3', ciphers: 'TLS_AES_128_GCM_SHA256' } },
        // TLS 1.2 preferring a 128-bit suite, with a 256-bit one as well.
        { kind: 'tls12', name: 'mx.aes128-first.test', serverOptions: { ciphers: 'ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384', honorCipherOrder: true } },
      ],
      { 'aes128.test': 'mx.aes128.test', 'aes128-v13.test': 'mx.aes128-v13.test', 'aes128-first.test': 'mx.aes128-first.test' },
      { tls: { min_cipher_bits: 256 }, policies: { default: { mode: 'forced', fallback: [] } } },
    );
  }, 60_000);
  afterAll(async () => lab?.close());

  it('a peer with only a 128-bit TLS 1.2 suite is deferred and gets nothing', async () => {
    const [r] = await lab.send(['u@aes128.test']);
    expectRefusedByHandshake(r!, HANDSHAKE_FAILURE_ALERT);
    expect(lab.mxs.byName('mx.aes128.test').received).toHaveLength(0);
    expect(lab.mxs.byName('mx.aes128.test').data.begun).toBe(0);
  });

  it('a peer with only a 128-bit TLS 1.3 suite is deferred and gets nothing', async () => {
    const [r] = await lab.send(['u@aes128-v13.test']);
    expectRefusedByHandshake(r!, HANDSHAKE_FAILURE_ALERT);
    expect(lab.mxs.byName('mx.aes128-v13.test').received).toHaveLength(0);
    expect(lab.mxs.byName('mx.aes128-v13.test').data.begun).toBe(0);
  });

  it('a peer that prefers a 128-bit suite cannot pull us under the floor: we offer only 256-bit ones, and get one', async () => {
    const [r] = await lab.send(['u@aes128-first.test']);
    expect(r).toMatchObject({ outcome: 'delivered', method: 'tls', tls: { protocol: 'TLSv1.2', cipher: 'ECDHE-RSA-AES256-GCM-SHA384', bits: 256 } });
    const [got] = lab.mxs.byName('mx.aes128-first.test').received;
    expect(got!.tls).toEqual({ protocol: 'TLSv1.2', cipher: 'ECDHE-RSA-AES256-GCM-SHA384' });
  });
});

describe("a rule's floor", () => {
  let lab: Lab;
  beforeAll(async () => {
    lab = await startLab([{ kind: 'tls12', name: 'mx.shared.test' }], { 'shared.test': 'mx.shared.test' }, {
      policies: {
        rules: [{ name: 'strict-floor', match: { recipient: 'strict@shared.test' }, mode: 'opportunistic', floor: { min_version: 'TLSv1.3' } }],
      },
    });
  }, 60_000);
  afterAll(async () => lab?.close());

  it('applies to its recipients only: same message, same TLS 1.2-only MX, one delivered and one deferred', async () => {
    const [lax, strict] = await lab.send(['lax@shared.test', 'strict@shared.test']);
    expect(lax).toMatchObject({ outcome: 'delivered', method: 'tls', tls: { protocol: 'TLSv1.2' }, });
    // A rule that raises only the floor leaves the mode, so the decision keeps the default's name; its reason is there.
    expect(strict!.decision).toMatchObject({ mode: 'opportunistic' });
    expect(strict!.decision.reasons).toContainEqual(expect.stringMatching(/^rule strict-floor: /));
    expect(lax!.decision.reasons.some((why) => why.includes('strict-floor'))).toBe(false);
    expectRefusedByHandshake(strict!, PROTOCOL_VERSION_ALERT);
    // The MX got the message once, for the lax recipient only.
    const mx = lab.mxs.byName('mx.shared.test');
    expect(mx.received.map((m) => m.envelope.to)).toEqual([['lax@shared.test']]);
    expect(mx.received[0]!.tls).toMatchObject({ protocol: 'TLSv1.2' });
    expect(mx.data.begun).toBe(1);
  });
});
