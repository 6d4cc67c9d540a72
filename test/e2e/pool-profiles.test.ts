// Pooled delivery connections never cross security profiles. A connection kept open
// for more mail (delivery.idle_reuse_ms) was judged once, when it was opened, under
// the policy of the attempt that opened it: the certificate check, the floor and the
// CA bundle. Mail whose policy asks for more must get a connection of its own, judged
// under its own policy (attempt.ts sessionKey) — never ride on one opened without
// the check. Each test also sends a control message with the first profile, which
// does travel on the first connection: the pool was live, so the refusal is the key's
// doing, not an idle timeout.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DeliveryRecord } from '../../src/delivery/record.ts';
import { startDnsStub, type DnsStub, type Zone } from '../helpers/dns-stub.ts';
import { startMxSet, type MxSet, type StartedMx } from '../helpers/mx.ts';
import { queueIdOf, startTestRelay, submit, testConfig, type TestRelay } from '../helpers/relay.ts';
import { createTestCa, writeTemp } from '../helpers/test-ca.ts';

/** Far longer than any of these tests: an idle connection is always still there for the next message. */
const IDLE_REUSE_MS = 120_000;
/** A TLS 1.2 MX that prefers a 128-bit suite but also has a 256-bit one. */
const AES128_FIRST = 'ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384';

// Same MX host, different profiles. `forced` needs TLS whatever domain knowledge says,
// so the profile a domain gets does not change after its first delivery; no fallback,
// so a refusal is a plain deferral.
const forced = (verification: 'none' | 'ca') => ({ mode: 'forced', verification, fallback: [] });
const ZONES: Record<string, string> = {
  'nocheck.test': 'mx.selfsigned.test',
  'nocheck-again.test': 'mx.selfsigned.test',
  'check.test': 'mx.selfsigned.test',
  'floor-default.test': 'mx.aes128.test',
  'floor-default-again.test': 'mx.aes128.test',
  'floor-tls13.test': 'mx.aes128.test',
  'floor-256.test': 'mx.aes128.test',
  'verified.test': 'mx.verified.test',
};

describe('pooled connections and security profiles', () => {
  let dns: DnsStub;
  let mxs: MxSet;
  let relay: TestRelay;

  beforeAll(async () => {
    mxs = await startMxSet([
      { kind: 'selfsigned', name: 'mx.selfsigned.test' },
      { kind: 'tls12', name: 'mx.aes128.test', serverOptions: { ciphers: AES128_FIRST, honorCipherOrder: true } },
      { kind: 'tls13', name: 'mx.verified.test' },
    ]);
    const zone: Zone = {};
    for (const mx of mxs.mxs) zone[mx.name] = { A: [mx.host] };
    for (const [domain, exchange] of Object.entries(ZONES)) zone[domain] = { MX: [{ preference: 10, exchange }] };
    dns = await startDnsStub(zone);
    relay = await startTestRelay(
      testConfig({
        delivery: { port: mxs.port, dns: { servers: [dns.server] }, idle_reuse_ms: IDLE_REUSE_MS, retry: { first_seconds: 3600, max_seconds: 3600 } },
        policies: {
          domains: {
            'nocheck.test': forced('none'),
            'nocheck-again.test': forced('none'),
            'check.test': forced('ca'),
            'floor-default.test': forced('none'),
            'floor-default-again.test': forced('none'),
            'verified.test': forced('ca'),
          },
          rules: [
            { name: 'tls13-floor', match: { recipient_domain: 'floor-tls13.test' }, mode: 'forced', floor: { min_version: 'TLSv1.3' }, fallback: [] },
            { name: 'bits-256-floor', match: { recipient_domain: 'floor-256.test' }, mode: 'forced', floor: { min_cipher_bits: 256 }, fallback: [] },
          ],
        },
      }),
    );
  }, 60_000);

  afterAll(async () => {
    await relay?.close();
    await mxs?.close();
    await dns?.close();
  });

  /** Submits one message to `to` and waits for its first DeliveryRecord. */
  async function deliverOne(to: string): Promise<DeliveryRecord> {
    const id = queueIdOf(await submit({ port: relay.port, from: 'app@hospital.test', to: [to] }));
    const records = await relay.waitForRecords((r) => r.some((x) => x.queueId === id), 20_000);
    return records.find((x) => x.queueId === id)!;
  }

  /** The MX session that carried the message to `to`. */
  const sessionOf = (mx: StartedMx, to: string) => mx.received.find((m) => m.envelope.to.includes(to))?.sessionId;

  it('a connection opened without a certificate check never carries mail that requires one', async () => {
    const mx = mxs.byName('mx.selfsigned.test');

    const lax = await deliverOne('u@nocheck.test');
    expect(lax).toMatchObject({ outcome: 'delivered', method: 'tls', tls: { authorized: false } });
    expect(mx.sessions).toHaveLength(1);

    // Same MX, well within idle_reuse_ms; this one requires a verified certificate.
    const strict = await deliverOne('u@check.test');
    expect(strict).toMatchObject({ outcome: 'deferred', method: 'none', decision: { verification: 'ca' } });
    expect(strict.smtp).toEqual({ code: 451, enhanced: '4.7.5', response: 'chain of mx.selfsigned.test not trusted (DEPTH_ZERO_SELF_SIGNED_CERT)' });
    // Judged on a handshake of its own: the record holds that connection's TLS facts.
    expect(strict.tls).toMatchObject({ authorized: false, authorizationError: 'DEPTH_ZERO_SELF_SIGNED_CERT' });
    // Nothing travelled: one DATA at the MX (the first message), and the second
    // attempt opened its own connection, which carried no transaction.
    expect(mx.data.begun).toBe(1);
    expect(mx.received.map((m) => m.envelope.to)).toEqual([['u@nocheck.test']]);
    expect(mx.sessions).toHaveLength(2);
    expect(mx.sessions.map((s) => s.transactions)).toEqual([1, 0]);

    // Control: the first connection was idle in the pool all along and takes mail of its own profile.
    const again = await deliverOne('u@nocheck-again.test');
    expect(again).toMatchObject({ outcome: 'delivered', method: 'tls' });
    expect(sessionOf(mx, 'u@nocheck-again.test')).toBe(sessionOf(mx, 'u@nocheck.test'));
    expect(mx.sessions).toHaveLength(2);
  });

  it('a connection opened under the default floor never carries mail whose floor is higher', async () => {
    const mx = mxs.byName('mx.aes128.test');

    // The MX prefers a 128-bit suite: at the default floor that is what the connection gets.
    const lax = await deliverOne('u@floor-default.test');
    expect(lax).toMatchObject({ outcome: 'delivered', method: 'tls', tls: { protocol: 'TLSv1.2', cipher: 'ECDHE-RSA-AES128-GCM-SHA256', bits: 128 } });

    // A TLS 1.3 floor against this TLS 1.2 MX: refused on a connection of its own.
    const v13 = await deliverOne('u@floor-tls13.test');
    expect(v13).toMatchObject({ outcome: 'deferred', method: 'none', tls: null, smtp: { code: 451, enhanced: '4.7.5' } });
    expect(v13.smtp.response).toMatch(/^TLS handshake failed: .*alert protocol version/);

    // A 256-bit floor: its own connection, where it gets the MX's 256-bit suite.
    const bits256 = await deliverOne('u@floor-256.test');
    expect(bits256).toMatchObject({ outcome: 'delivered', method: 'tls', tls: { protocol: 'TLSv1.2', cipher: 'ECDHE-RSA-AES256-GCM-SHA384', bits: 256 } });
    const witness = mx.received.find((m) => m.envelope.to.includes('u@floor-256.test'))!;
    expect(witness.tls).toEqual({ protocol: 'TLSv1.2', cipher: 'ECDHE-RSA-AES256-GCM-SHA384' });
    expect(witness.sessionId).not.toBe(sessionOf(mx, 'u@floor-default.test'));

    // Nothing else travelled on the first connection; the TLS 1.3 attempt never reached DATA.
    expect(mx.data.begun).toBe(2);
    expect(mx.received.map((m) => m.envelope.to)).toEqual([['u@floor-default.test'], ['u@floor-256.test']]);

    // Control: the first connection still takes mail at its own floor.
    const again = await deliverOne('u@floor-default-again.test');
    expect(again).toMatchObject({ outcome: 'delivered', tls: { bits: 128 } });
    expect(sessionOf(mx, 'u@floor-default-again.test')).toBe(sessionOf(mx, 'u@floor-default.test'));
  });

  it('a connection verified against the old CA bundle carries nothing once tls.ca_file names another', async () => {
    const mx = mxs.byName('mx.verified.test');

    const before = await deliverOne('u@verified.test');
    expect(before).toMatchObject({ outcome: 'delivered', method: 'tls', tls: { authorized: true } });

    // The operator points tls.ca_file at a bundle that does not hold the MX's issuer, and reloads.
    const oldCaFile = relay.config.tls.ca_file;
    const otherCaFile = writeTemp('other-ca.pem', createTestCa({ commonName: 'Some Other CA' }).certPem);
    await relay.relay.reload({ ...relay.config, tls: { ...relay.config.tls, ca_file: otherCaFile } });

    const after = await deliverOne('u@verified.test');
    expect(after).toMatchObject({ outcome: 'deferred', method: 'none', tls: { authorized: false } });
    expect(after.smtp).toMatchObject({ code: 451, enhanced: '4.7.5' });
    expect(after.smtp.response).toMatch(/^chain of mx\.verified\.test not trusted \(/);
    expect(mx.data.begun).toBe(1);
    expect(mx.sessions.map((s) => s.transactions)).toEqual([1, 0]);

    // Control: back to the old bundle, the first connection (never closed) carries the retry's profile again.
    await relay.relay.reload({ ...relay.config, tls: { ...relay.config.tls, ca_file: oldCaFile } });
    const back = await deliverOne('u@verified.test');
    expect(back).toMatchObject({ outcome: 'delivered', tls: { authorized: true } });
    expect(mx.received).toHaveLength(2);
    expect(mx.received[1]!.sessionId).toBe(mx.received[0]!.sessionId);
  });
});
