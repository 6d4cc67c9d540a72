// Every mode against every kind of receiving MX: what was delivered, what the
// DeliveryRecord says, and that its TLS facts equal what the receiver saw on its
// own socket (DESIGN: the receiver is the independent witness).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DeliveryRecord } from '../../src/delivery/record.ts';
import { startDnsStub, type DnsStub, type Zone } from '../helpers/dns-stub.ts';
import { startMxSet, type MxKind, type MxSet } from '../helpers/mx.ts';
import { startTestRelay, submit, testConfig, type TestRelay } from '../helpers/relay.ts';
import { HANDSHAKE_FAILURE_ALERT, handshakeRefused, PROTOCOL_VERSION_ALERT } from '../helpers/tls-refusals.ts';

type Expect = { outcome: DeliveryRecord['outcome']; method: DeliveryRecord['method']; protocol?: string; authorized?: boolean; because?: RegExp };

const PEERS: MxKind[] = ['tls13', 'tls12', 'plain', 'selfsigned', 'weak-protocol', 'weak-cipher'];
const POLICIES = {
  opportunistic: { mode: 'opportunistic', verification: 'none' },
  forced: { mode: 'forced', verification: 'none' },
  'forced-ca': { mode: 'forced', verification: 'ca' },
  'tls-exclusive': { mode: 'tls-exclusive', verification: 'none' },
  none: { mode: 'none', verification: 'none' },
} as const;
type PolicyName = keyof typeof POLICIES;

const delivered = (protocol: string | null, authorized?: boolean): Expect =>
  protocol ? { outcome: 'delivered', method: 'tls', protocol, ...(authorized === undefined ? {} : { authorized }) } : { outcome: 'delivered', method: 'plaintext' };
const deferred = (because: RegExp): Expect => ({ outcome: 'deferred', method: 'none', because });
const dropped = (because: RegExp): Expect => ({ outcome: 'dropped', method: 'none', because });
// Both weak peers are refused by the handshake itself (we offer nothing under the floor), each
// with its own TLS alert: the reason names which, not just "something about TLS".
const WEAK_PROTOCOL = PROTOCOL_VERSION_ALERT;
const WEAK_CIPHER = HANDSHAKE_FAILURE_ALERT;
const DROPPED = { prefix: 'dropped by mode tls-exclusive: ' };
// forced then tries its fallback chain (pgp, smime): no keys here, and the reason lists each step.
const NO_KEYS = { suffix: /; fallback: pgp: no OpenPGP key for .+; smime: no S\/MIME certificate for .+/ };

// The table: policy × peer → what must happen on the first attempt.
const TABLE: Record<PolicyName, Record<string, Expect>> = {
  opportunistic: {
    tls13: delivered('TLSv1.3'),
    tls12: delivered('TLSv1.2'),
    plain: delivered(null),
    selfsigned: delivered('TLSv1.3', false),
    // STARTTLS was offered but nothing acceptable came of it: never fall back to plaintext.
    'weak-protocol': deferred(handshakeRefused(WEAK_PROTOCOL)),
    'weak-cipher': deferred(handshakeRefused(WEAK_CIPHER)),
  },
  forced: {
    tls13: delivered('TLSv1.3'),
    tls12: delivered('TLSv1.2'),
    plain: deferred(/STARTTLS/i),
    selfsigned: delivered('TLSv1.3', false),
    'weak-protocol': deferred(handshakeRefused(WEAK_PROTOCOL, NO_KEYS)),
    'weak-cipher': deferred(handshakeRefused(WEAK_CIPHER, NO_KEYS)),
  },
  'forced-ca': {
    tls13: delivered('TLSv1.3', true),
    tls12: delivered('TLSv1.2', true),
    plain: deferred(/STARTTLS/i),
    selfsigned: deferred(/certificate|self.signed|verif/i),
    'weak-protocol': deferred(handshakeRefused(WEAK_PROTOCOL, NO_KEYS)),
    'weak-cipher': deferred(handshakeRefused(WEAK_CIPHER, NO_KEYS)),
  },
  'tls-exclusive': {
    tls13: delivered('TLSv1.3'),
    tls12: delivered('TLSv1.2'),
    plain: dropped(/STARTTLS/i),
    selfsigned: delivered('TLSv1.3', false),
    'weak-protocol': dropped(handshakeRefused(WEAK_PROTOCOL, DROPPED)),
    'weak-cipher': dropped(handshakeRefused(WEAK_CIPHER, DROPPED)),
  },
  none: {
    tls13: delivered(null),
    plain: delivered(null),
  },
};

const domainFor = (policy: string, peer: string) => `${policy}--${peer}.test`;

describe('delivery modes × receiving MX kinds', () => {
  let dns: DnsStub;
  let mxs: MxSet;
  let relay: TestRelay;

  beforeAll(async () => {
    mxs = await startMxSet(PEERS.map((kind) => ({ kind, name: `${kind}.mx.test` })));
    const zone: Zone = {};
    const domains: Record<string, { mode: string; verification: string }> = {};
    for (const mx of mxs.mxs) zone[mx.name] = { A: [mx.host] };
    for (const [policy, peers] of Object.entries(TABLE)) {
      for (const peer of Object.keys(peers)) {
        zone[domainFor(policy, peer)] = { MX: [{ preference: 10, exchange: `${peer}.mx.test` }] };
        domains[domainFor(policy, peer)] = POLICIES[policy as PolicyName];
      }
    }
    dns = await startDnsStub(zone);
    relay = await startTestRelay(
      testConfig({
        delivery: { port: mxs.port, dns: { servers: [dns.server] }, retry: { first_seconds: 3600, max_seconds: 3600 } },
        policies: { domains },
      }),
    );
    const recipients = Object.entries(TABLE).flatMap(([policy, peers]) => Object.keys(peers).map((peer) => `user@${domainFor(policy, peer)}`));
    // One message per recipient so each (policy, peer) pair is its own transaction.
    for (const to of recipients) await submit({ port: relay.port, from: 'app@hospital.test', to: [to] });
    await relay.waitForRecords((records) => recipients.every((r) => records.some((rec) => rec.recipient === r)), 20_000);
  }, 60_000);

  afterAll(async () => {
    await relay?.close();
    await mxs?.close();
    await dns?.close();
  });

  for (const [policy, peers] of Object.entries(TABLE)) {
    for (const [peer, want] of Object.entries(peers)) {
      it(`${policy} × ${peer} → ${want.outcome} via ${want.method}`, async () => {
        const recipient = `user@${domainFor(policy, peer)}`;
        const [record] = await relay.records({ recipient });
        expect(record).toBeDefined();
        const r = record!;
        expect(r).toMatchObject({ outcome: want.outcome, method: want.method, domain: domainFor(policy, peer), attempt: 1 });
        expect(r.decision).toMatchObject({ mode: POLICIES[policy as PolicyName].mode, verification: POLICIES[policy as PolicyName].verification, rule: `domain:${domainFor(policy, peer)}` });
        expect(r.mx).toMatchObject({ host: `${peer}.mx.test`, ip: mxs.byName(`${peer}.mx.test`).host, port: mxs.port, preference: 10 });

        const got = mxs.byName(`${peer}.mx.test`).received.filter((m) => m.envelope.to.includes(recipient));
        if (want.outcome === 'delivered') {
          expect(got).toHaveLength(1);
          expect(r.smtp.code).toBe(250);
          if (want.protocol) {
            // The record's TLS facts come from our socket; the receiver's from its own.
            expect(r.tls).toMatchObject({ protocol: want.protocol });
            expect(got[0]!.tls).toEqual({ protocol: r.tls!.protocol, cipher: r.tls!.cipher });
            expect(r.tls!.bits).toBeGreaterThanOrEqual(128);
            expect(r.tls!.peerCertFingerprint256).toMatch(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
            if (want.authorized !== undefined) expect(r.tls!.authorized).toBe(want.authorized);
            expect(r.starttlsOffered).toBe(true);
          } else {
            expect(r.tls).toBeNull();
            expect(got[0]!.tls).toBeNull();
          }
        } else {
          // Nothing reached the receiver: no plaintext copy, no partial copy.
          expect(got).toHaveLength(0);
          expect(r.smtp.response).toMatch(want.because!);
          if (want.outcome === 'deferred') expect(r.smtp.code).toBeGreaterThanOrEqual(400);
          if (want.outcome === 'deferred') expect(r.smtp.code).toBeLessThan(500);
        }
      });
    }
  }

  it('a dropped recipient is final: it leaves the queue and is never retried', async () => {
    const recipient = `user@${domainFor('tls-exclusive', 'plain')}`;
    const records = await relay.records({ recipient });
    expect(records).toHaveLength(1);
    const queue = await relay.records({ outcome: 'dropped' });
    expect(queue.map((r) => r.recipient).sort()).toEqual(
      ['plain', 'weak-protocol', 'weak-cipher'].map((p) => `user@${domainFor('tls-exclusive', p)}`).sort(),
    );
  });
});
