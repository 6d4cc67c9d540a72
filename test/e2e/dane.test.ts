// DANE end to end (RFC 7672): zones signed and served by Knot, validated by Unbound
// (test/helpers/dnssec-zone.ts), real smtp-server MXs on loopback, the relay in
// process with delivery.dns.dnssec on. What is checked is what the MX received and
// what the DeliveryRecord says: a matching TLSA record delivers (even a self-signed
// certificate), a mismatch, a stripped STARTTLS, a bogus zone or dane-only without
// TLSA deliver nothing; an unsigned zone falls back to the other verification.
import crypto from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../../src/config/load.ts';
import type { DeliveryRecord } from '../../src/delivery/record.ts';
import { probeDomain } from '../../src/domains/probe.ts';
import { createPolicy } from '../../src/policy/decide.ts';
import { messageContext } from '../../src/policy/message-context.ts';
import { startSignedZones, type SignedZones } from '../helpers/dnssec-zone.ts';
import { startStripTlsProxy, type StripTlsProxy } from '../helpers/mitm.ts';
import { startMxSet, type MxSet, type StartedMx } from '../helpers/mx.ts';
import { queueIdOf, startTestRelay, submit, testConfig, type TestRelay } from '../helpers/relay.ts';

const sha256 = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');
/** TLSA 3 0 1: the SHA-256 of the whole certificate (DANE-EE, RFC 7671 §5.1). */
const certHash = (mx: StartedMx) => sha256(new crypto.X509Certificate(mx.certPem!).raw);
/** TLSA 3 1 1: the SHA-256 of the certificate's SubjectPublicKeyInfo. */
const spkiHash = (mx: StartedMx) => sha256(new crypto.X509Certificate(mx.certPem!).publicKey.export({ type: 'spki', format: 'der' }));
/** A digest no certificate has. */
const WRONG = sha256(Buffer.from('not the key of any test MX'));

describe('DANE', () => {
  let mxs: MxSet;
  let proxy: StripTlsProxy;
  let zones: SignedZones;
  let relay: TestRelay;

  beforeAll(async () => {
    mxs = await startMxSet([
      // Self-signed: only DANE can authenticate it.
      { kind: 'selfsigned', name: 'mx-self.signed.test' },
      // Signed by the test CA for its own name (trusted through tls.ca_file).
      { kind: 'tls13', name: 'mx.unsigned.test' },
    ]);
    const self = mxs.byName('mx-self.signed.test');
    const good = mxs.byName('mx.unsigned.test');
    proxy = await startStripTlsProxy({ upstreamHost: self.host, upstreamPort: mxs.port, port: mxs.port, mode: 'strip' });
    const tlsa = (host: string, rdata: string) => `_${mxs.port}._tcp.${host} TLSA ${rdata}`;
    zones = await startSignedZones({
      zones: [
        {
          origin: 'signed.test',
          signing: 'signed',
          records: [
            // match: DANE-EE over the self-signed certificate.
            'match MX 10 mx-self',
            `mx-self A ${self.host}`,
            tlsa('mx-self', `3 0 1 ${certHash(self)}`),
            // mismatch: the same MX, under a name whose TLSA names another key.
            'mismatch MX 10 mx-wrong',
            `mx-wrong A ${self.host}`,
            tlsa('mx-wrong', `3 1 1 ${WRONG}`),
            // stripped: a man in the middle removes STARTTLS on the way to the matching MX.
            'stripped MX 10 mx-strip',
            `mx-strip A ${proxy.host}`,
            tlsa('mx-strip', `3 1 1 ${spkiHash(self)}`),
            // notlsa: signed, no TLSA (auto: the other verification; dane-only: defer).
            'notlsa MX 10 mx-notlsa',
            'only MX 10 mx-notlsa',
            `mx-notlsa A ${self.host}`,
            // cname: the MX host is an alias; TLSA at the expanded name first (RFC 7672 §2.2.3)...
            'cname MX 10 mx-alias',
            'mx-alias CNAME mx-self',
            // ...and at the MX host name when the expanded name has none.
            'cname2 MX 10 mx-alias2',
            'mx-alias2 CNAME mx-notlsa',
            tlsa('mx-alias2', `3 0 1 ${certHash(self)}`),
            // tlsa-insecure: the TLSA name is an alias into the unsigned zone: an insecure TLSA answer is not used.
            'tlsa-insecure MX 10 mx-ins',
            `mx-ins A ${self.host}`,
            `_${mxs.port}._tcp.mx-ins CNAME _${mxs.port}._tcp.tlsa.unsigned.test.`,
            // tlsa-bogus: secure MX and address, but the TLSA answer fails validation: this host is not used.
            'tlsa-bogus MX 10 mx-bt',
            `mx-bt A ${self.host}`,
            `_${mxs.port}._tcp.mx-bt CNAME _${mxs.port}._tcp.mx.bogus.test.`,
            // pkix: only PKIX usages, which SMTP ignores (RFC 7672 §3.1.3).
            'pkix MX 10 mx-pkix',
            `mx-pkix A ${self.host}`,
            tlsa('mx-pkix', `1 1 1 ${spkiHash(self)}`),
          ],
        },
        // Unsigned: TLSA published but unvalidated, so ignored (DANE does not apply).
        // cross: an unsigned MX RRset pointing at a signed host with matching TLSA: still no DANE (RFC 7672 §2.2.1).
        { origin: 'unsigned.test', signing: 'unsigned', records: ['@ MX 10 mx', `mx A ${good.host}`, tlsa('mx', `3 1 1 ${WRONG}`), 'cross MX 10 mx-self.signed.test.', tlsa('tlsa', `3 1 1 ${WRONG}`)] },
        // Bogus: signatures that do not validate → SERVFAIL.
        { origin: 'bogus.test', signing: 'bogus', records: ['@ MX 10 mx', `mx A ${self.host}`, tlsa('mx', `3 0 1 ${certHash(self)}`)] },
      ],
    });
    const config = testConfig({
      delivery: { port: mxs.port, dns: { servers: [zones.resolver], dnssec: true, timeout_ms: 2000 }, retry: { first_seconds: 3600 } },
      policies: {
        rules: [
          { name: 'dane-only', match: { recipient_domain: 'only.signed.test' }, mode: 'opportunistic', verification: 'dane-only' },
          { name: 'dane', match: { recipient_domain: ['unsigned.test', 'cross.unsigned.test'] }, mode: 'opportunistic', verification: 'dane' },
        ],
      },
    });
    relay = await startTestRelay(config);
  }, 20_000);

  afterAll(async () => {
    await relay?.close();
    await proxy?.close();
    await zones?.close();
    await mxs?.close();
  });

  const attempt = async (to: string): Promise<DeliveryRecord> => {
    const id = queueIdOf(await submit({ port: relay.port, from: 'app@clinic.test', to: [to] }));
    const records = await relay.waitForRecords((r) => r.some((x) => x.queueId === id), 10_000);
    return records.find((x) => x.queueId === id)!;
  };
  const receivedBy = (to: string) => mxs.mxs.flatMap((m) => m.received).filter((m) => m.envelope.to.includes(to)).length;

  it('DANE-EE match: a self-signed certificate is delivered to, the record names the TLSA record that matched', async () => {
    const self = mxs.byName('mx-self.signed.test');
    const r = await attempt('pat@match.signed.test');
    expect(r).toMatchObject({ outcome: 'delivered', method: 'tls', decision: { mode: 'opportunistic', verification: 'auto' }, mx: { host: 'mx-self.signed.test' } });
    expect(r.dane).toEqual({ status: 'matched', tlsa: [`3 0 1 ${certHash(self)}`], matched: `3 0 1 ${certHash(self)}`, reason: expect.stringContaining(`_${mxs.port}._tcp.mx-self.signed.test`) });
    // The CA store would have refused it: DANE, not the CA, authenticated the peer.
    expect(r.tls?.authorized).toBe(false);
    expect(receivedBy('pat@match.signed.test')).toBe(1);
    // SNI names the MX host (RFC 7672 §8.1).
    expect(self.sessions.some((s) => s.servername === 'mx-self.signed.test')).toBe(true);
  });

  it('mismatch: deferred 4.7.5, nothing delivered', async () => {
    const r = await attempt('pat@mismatch.signed.test');
    expect(r).toMatchObject({ outcome: 'deferred', method: 'none', smtp: { code: 451, enhanced: '4.7.5' } });
    expect(r.dane).toMatchObject({ status: 'mismatch', tlsa: [`3 1 1 ${WRONG}`], matched: null });
    expect(r.smtp.response).toMatch(/DANE: certificate of mx-wrong\.signed\.test matches no usable TLSA record/);
    expect(receivedBy('pat@mismatch.signed.test')).toBe(0);
  });

  it('TLSA published but STARTTLS stripped by a man in the middle: deferred, nothing in plaintext', async () => {
    const r = await attempt('pat@stripped.signed.test');
    expect(r).toMatchObject({ outcome: 'deferred', method: 'none', starttlsOffered: false, tls: null, smtp: { code: 451, enhanced: '4.7.4' } });
    expect(r.dane).toMatchObject({ status: 'mismatch', reason: expect.stringMatching(/TLS is mandatory with a usable TLSA set.*STARTTLS not offered/) });
    expect(proxy.strippedEhlo).toBeGreaterThanOrEqual(1);
    expect(receivedBy('pat@stripped.signed.test')).toBe(0);
  });

  it('bogus signatures: deferred, nothing delivered, the record says bogus', async () => {
    const r = await attempt('pat@bogus.test');
    expect(r).toMatchObject({ outcome: 'deferred', method: 'none', mx: null, smtp: { code: 451, enhanced: '4.7.5' } });
    expect(r.dane).toMatchObject({ status: 'bogus', tlsa: [], matched: null, reason: expect.stringMatching(/SERVFAIL/) });
    expect(receivedBy('pat@bogus.test')).toBe(0);
  });

  it('a TLSA answer that fails validation for one host: that host is not used, deferred 4.7.5', async () => {
    const r = await attempt('pat@tlsa-bogus.signed.test');
    expect(r).toMatchObject({ outcome: 'deferred', method: 'none', mx: { host: 'mx-bt.signed.test' }, smtp: { code: 451, enhanced: '4.7.5' } });
    expect(r.dane).toMatchObject({ status: 'bogus', reason: expect.stringMatching(/TLSA lookup of _\d+\._tcp\.mx-bt\.signed\.test/) });
    expect(receivedBy('pat@tlsa-bogus.signed.test')).toBe(0);
  });

  it('a TLSA answer that is not DNSSEC-secure is not used (its record would not match)', async () => {
    const r = await attempt('pat@tlsa-insecure.signed.test');
    expect(r).toMatchObject({ outcome: 'delivered', dane: { status: 'insecure', reason: expect.stringMatching(/TLSA records at .* are not DNSSEC-signed/) } });
  });

  it('unsigned zone: DANE does not apply, the other verification does (dane → ca: a trusted certificate is delivered to)', async () => {
    const r = await attempt('pat@unsigned.test');
    expect(r).toMatchObject({ outcome: 'delivered', method: 'tls', decision: { verification: 'dane' }, tls: { authorized: true } });
    expect(r.dane).toMatchObject({ status: 'insecure', tlsa: [], reason: expect.stringMatching(/not DNSSEC-signed/) });
    expect(receivedBy('pat@unsigned.test')).toBe(1);
  });

  it('an unsigned MX RRset leading to a host with TLSA: DANE does not apply, the self-signed certificate fails the ca check', async () => {
    const r = await attempt('pat@cross.unsigned.test');
    expect(r).toMatchObject({ outcome: 'deferred', mx: { host: 'mx-self.signed.test' }, dane: { status: 'insecure', reason: expect.stringMatching(/MX records of cross\.unsigned\.test are not DNSSEC-signed/) } });
    expect(r.smtp.response).toMatch(/not trusted/);
    expect(receivedBy('pat@cross.unsigned.test')).toBe(0);
  });

  it('signed zone without TLSA: auto delivers as none would; dane-only defers', async () => {
    const auto = await attempt('pat@notlsa.signed.test');
    expect(auto).toMatchObject({ outcome: 'delivered', method: 'tls', dane: { status: 'no-usable-tlsa' } });
    const only = await attempt('pat@only.signed.test');
    expect(only).toMatchObject({ outcome: 'deferred', method: 'none', decision: { verification: 'dane-only' }, smtp: { code: 451, enhanced: '4.7.5' }, dane: { status: 'no-usable-tlsa' } });
    expect(only.smtp.response).toMatch(/dane-only: no TLSA records at/);
    expect(receivedBy('pat@only.signed.test')).toBe(0);
  });

  it('MX host behind a secure CNAME: TLSA at the expanded name, else at the MX host name (RFC 7672 §2.2.3)', async () => {
    const expanded = await attempt('pat@cname.signed.test');
    expect(expanded).toMatchObject({ outcome: 'delivered', mx: { host: 'mx-alias.signed.test' }, dane: { status: 'matched', reason: expect.stringContaining(`_${mxs.port}._tcp.mx-self.signed.test`) } });
    const original = await attempt('pat@cname2.signed.test');
    expect(original).toMatchObject({ outcome: 'delivered', mx: { host: 'mx-alias2.signed.test' }, dane: { status: 'matched', reason: expect.stringContaining(`_${mxs.port}._tcp.mx-alias2.signed.test`) } });
  });

  it('PKIX-only TLSA records are not usable for SMTP: recorded as such, the other verification applies', async () => {
    const r = await attempt('pat@pkix.signed.test');
    expect(r).toMatchObject({ outcome: 'delivered', dane: { status: 'no-usable-tlsa', reason: expect.stringMatching(/none usable/) } });
  });

  it('check-domain: DNSSEC status, each MX host\'s TLSA records and whether its certificate matches', async () => {
    const match = await probeDomain('match.signed.test', { config: relay.config });
    expect(match.dnssec).toEqual({ enabled: true, mxSecure: true });
    expect(match.mxs[0]).toMatchObject({ host: 'mx-self.signed.test', dane: { status: 'matched', matched: `3 0 1 ${certHash(mxs.byName('mx-self.signed.test'))}` } });
    const mismatch = await probeDomain('mismatch.signed.test', { config: relay.config });
    expect(mismatch.mxs[0]?.dane).toMatchObject({ status: 'mismatch', tlsa: [`3 1 1 ${WRONG}`] });
    const unsigned = await probeDomain('unsigned.test', { config: relay.config });
    expect(unsigned.dnssec).toEqual({ enabled: true, mxSecure: false });
    expect(unsigned.mxs[0]?.dane).toMatchObject({ status: 'insecure' });
  });
});

describe('DANE configuration', () => {
  const base = 'ingress:\n  listeners:\n    starttls:\n      port: 2525\n';
  /** The loader's message for a config text, as `sealrelay start` prints it. */
  const refusal = (text: string): string => {
    try {
      parseConfig(text, 'sealrelay.yaml');
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      return (err as ConfigError).message;
    }
    return '';
  };

  it('dane and dane-only are refused without delivery.dns.dnssec, naming the file, line and key', () => {
    for (const verification of ['dane', 'dane-only']) {
      expect(refusal(`${base}policies:\n  domains:\n    bank.example: { mode: forced, verification: ${verification} }\n`)).toMatch(
        new RegExp(`sealrelay\\.yaml:7:\\d+: policies\\.domains\\.bank\\.example\\.verification: verification ${verification} needs DNSSEC: set delivery\\.dns\\.dnssec: true`),
      );
    }
    expect(refusal(`${base}policies:\n  rules:\n    - { name: r, match: { sender: a@b }, mode: forced, verification: dane }\n`)).toMatch(/policies\.rules\[r\]\.verification: verification dane needs DNSSEC/);
    // With a validating resolver declared, the same settings load.
    expect(refusal(`${base}delivery:\n  dns: { servers: ["127.0.0.1:5353"], dnssec: true }\npolicies:\n  default: { mode: opportunistic, verification: dane-only }\n`)).toBe('');
  });

  it('dnssec needs the validating resolver named in delivery.dns.servers; auto loads without dnssec and means none', () => {
    expect(refusal(`${base}delivery:\n  dns: { dnssec: true }\n`)).toMatch(/delivery\.dns\.dnssec: dnssec: true needs the validating resolver in delivery\.dns\.servers/);
    const config = parseConfig(`${base}policies:\n  default: { mode: opportunistic, verification: auto }\n`, 'sealrelay.yaml');
    const decision = createPolicy(config).decide('pat@example.org', messageContext({ sender: '', authUser: null, headerBlock: '' }));
    expect(decision.verification).toBe('none');
  });
});
