// openSession under DANE against real smtp-server MXs on loopback: a usable TLSA set
// makes STARTTLS mandatory whatever the mode, and the certificate is judged by the
// set alone (the chain as presented, walked to DER, leaf first), never by the CA store.
import crypto from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { NoAcceptableTls, openSession, type Session, type SessionOptions } from '../../src/delivery/connection.ts';
import type { MxTarget } from '../../src/delivery/resolve-mx.ts';
import { createLogger } from '../../src/log.ts';
import type { TlsaRecord } from '../../src/net/dnssec.ts';
import { startMx, type MxKind, type StartedMx } from '../helpers/mx.ts';
import { sharedTestCa } from '../helpers/test-ca.ts';

const BASE: SessionOptions = {
  name: 'relay.example.test',
  floor: { minVersion: 'TLSv1.2', minCipherBits: 128 },
  // What an opportunistic decision without DANE would check: nothing.
  verification: 'none',
  timeouts: { connectMs: 5000, greetingMs: 5000, socketMs: 10_000 },
  requireTls: false,
  allowTls: true,
  logger: createLogger('silent'),
};

const cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  await Promise.all(cleanup.splice(0).map((f) => f().catch(() => undefined)));
});

async function mx(kind: MxKind, name: string): Promise<StartedMx> {
  const started = await startMx(kind, { name });
  cleanup.push(() => started.close());
  return started;
}
const target = (m: StartedMx): MxTarget => ({ host: m.name, ip: m.host, port: m.port, preference: 10 });
const digest = (der: Buffer) => crypto.createHash('sha256').update(der).digest();
const tlsa = (usage: number, selector: number, data: Buffer): TlsaRecord => ({ usage, selector, matchingType: 1, data });

async function attempt(m: StartedMx, usable: TlsaRecord[], opts: Partial<SessionOptions> = {}): Promise<Session | NoAcceptableTls> {
  try {
    const session = await openSession(target(m), { ...BASE, ...opts, dane: { usable, names: [m.name] } });
    cleanup.push(() => session.quit());
    return session;
  } catch (err) {
    expect(err).toBeInstanceOf(NoAcceptableTls);
    return err as NoAcceptableTls;
  }
}

describe('sessions under DANE', () => {
  it('DANE-EE over a self-signed certificate: accepted, the session names the record; SNI is the MX host', async () => {
    const m = await mx('selfsigned', 'mx.ee.test');
    const record = tlsa(3, 0, digest(new crypto.X509Certificate(m.certPem!).raw));
    const session = await attempt(m, [record]);
    expect(session).not.toBeInstanceOf(NoAcceptableTls);
    expect((session as Session).daneMatched).toBe(`3 0 1 ${record.data.toString('hex')}`);
    expect((session as Session).tls?.authorized).toBe(false);
    expect(m.sessions.at(-1)?.servername).toBe('mx.ee.test');
  });

  it('DANE-TA naming the test CA: the chain as presented is walked to the trust anchor', async () => {
    // The server sends its CA after the leaf, as RFC 7671 §5.2.2 asks of DANE-TA servers.
    const leaf = sharedTestCa().issue({ commonName: 'mx.ta.test', altNames: ['mx.ta.test'] });
    const m = await startMx('tls13', { name: 'mx.ta.test', serverOptions: { key: leaf.keyPem, cert: leaf.certPem + sharedTestCa().certPem } });
    cleanup.push(() => m.close());
    const ca = new crypto.X509Certificate(sharedTestCa().certPem);
    const session = await attempt(m, [tlsa(2, 1, digest(ca.publicKey.export({ type: 'spki', format: 'der' })))], { verification: 'none' });
    expect(session, String((session as NoAcceptableTls).reason)).not.toBeInstanceOf(NoAcceptableTls);
    expect((session as Session).daneMatched).toMatch(/^2 1 1 /);
  });

  it('a verification besides DANE (an MTA-STS enforce policy: mta-sts) must hold too: a matching self-signed certificate is refused', async () => {
    const m = await mx('selfsigned', 'mx.sts.test');
    const err = await attempt(m, [tlsa(3, 0, digest(new crypto.X509Certificate(m.certPem!).raw))], { verification: 'mta-sts' });
    expect(err).toMatchObject({ kind: 'verify-failed', enhanced: '4.7.5' });
    expect((err as NoAcceptableTls).reason).toMatch(/not trusted/);
  });

  it('no match: refused before MAIL FROM (4.7.5), whatever the mode allows', async () => {
    const m = await mx('selfsigned', 'mx.wrong.test');
    const err = await attempt(m, [tlsa(3, 1, digest(Buffer.from('another key')))]);
    expect(err).toMatchObject({ kind: 'verify-failed', code: 451, enhanced: '4.7.5' });
    expect((err as NoAcceptableTls).reason).toMatch(/^DANE: certificate of mx\.wrong\.test matches no usable TLSA record/);
    expect(m.received).toHaveLength(0);
  });

  it('a host without STARTTLS: refused even though the decision would take plaintext', async () => {
    const m = await mx('plain', 'mx.plain.test');
    const err = await attempt(m, [tlsa(3, 1, digest(Buffer.from('any')))], { requireTls: false, allowTls: false });
    expect(err).toMatchObject({ kind: 'no-starttls', starttlsOffered: false });
    expect(m.received).toHaveLength(0);
  });
});
