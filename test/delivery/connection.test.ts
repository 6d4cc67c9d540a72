// openSession + send against real smtp-server MXs on loopback (test/helpers/mx.ts).
// The MX records what it negotiated on its own socket: the session's TLS facts must
// equal that independent witness.
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { NoAcceptableTls, openSession, type Session, type SessionOptions } from '../../src/delivery/connection.ts';
import type { MxTarget } from '../../src/delivery/resolve-mx.ts';
import { createLogger } from '../../src/log.ts';
import { SmtpError } from '../../src/smtp-error.ts';
import { startMx, type MxKind, type MxOptions, type StartedMx } from '../helpers/mx.ts';
import { sharedTestCa, writeTemp } from '../helpers/test-ca.ts';

const logger = createLogger('silent');
const BASE: SessionOptions = {
  name: 'relay.example.test',
  floor: { minVersion: 'TLSv1.2', minCipherBits: 128 },
  verification: 'none',
  timeouts: { connectMs: 5000, greetingMs: 5000, socketMs: 10_000 },
  requireTls: false,
  allowTls: true,
  logger,
};
const BODY = Buffer.from('From: a@example.org\r\nTo: b@example.net\r\nSubject: hi\r\n\r\nHello there.\r\n.leading dot\r\n');

const cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  await Promise.all(cleanup.splice(0).map((f) => f().catch(() => undefined)));
});

async function mx(kind: MxKind, opts: MxOptions = {}): Promise<StartedMx> {
  const started = await startMx(kind, opts);
  cleanup.push(() => started.close());
  return started;
}

function target(m: StartedMx, host = m.name): MxTarget {
  return { host, ip: m.host, port: m.port, preference: 10 };
}

async function open(t: MxTarget, opts: Partial<SessionOptions> = {}): Promise<Session> {
  const session = await openSession(t, { ...BASE, ...opts });
  cleanup.push(() => session.quit());
  return session;
}

async function refusal(t: MxTarget, opts: Partial<SessionOptions> = {}): Promise<unknown> {
  return openSession(t, { ...BASE, ...opts }).then(
    (s) => {
      cleanup.push(() => s.quit());
      return null;
    },
    (e: unknown) => e,
  );
}

describe('TLS facts come from the live socket and match the receiver', () => {
  it.each([
    ['tls13', 'TLSv1.3'],
    ['tls12', 'TLSv1.2'],
  ] as const)('%s MX', async (kind, protocol) => {
    const m = await mx(kind);
    const session = await open(target(m));
    expect(session.starttlsOffered).toBe(true);
    expect(session.tls).toMatchObject({ protocol, authorized: false, peerCertSubject: 'CN=mx.example.test' });
    const result = await session.send({ from: 'a@example.org', to: ['b@example.net'] }, BODY);
    expect(result.perRecipient.get('b@example.net')).toMatchObject({ accepted: true, code: 250, enhanced: '2.0.0' });
    const [received] = await m.waitFor(1);
    // The receiver's own view of the same session (smtp-server's getCipher().name).
    expect(received!.tls).toEqual({ protocol: session.tls!.protocol, cipher: session.tls!.cipher });
    expect(m.sessions[0]).toMatchObject({ secure: true, protocol, cipher: session.tls!.cipher, servername: 'mx.example.test', heloName: 'relay.example.test' });
    expect(session.tls!.bits).toBeGreaterThanOrEqual(128);
    expect(received!.raw.toString()).toBe(BODY.toString());
  });

  it('no SNI for an IP literal host', async () => {
    const m = await mx('tls13');
    const session = await open(target(m, m.host));
    expect(session.tls?.protocol).toBe('TLSv1.3');
    expect(m.sessions[0]!.servername).toBeNull();
  });
});

describe('no STARTTLS', () => {
  it('opportunistic: plaintext session, STARTTLS not offered', async () => {
    const m = await mx('plain');
    const session = await open(target(m));
    expect(session).toMatchObject({ starttlsOffered: false, tls: null, usable: true });
    const result = await session.send({ from: 'a@example.org', to: ['b@example.net'] }, BODY);
    expect(result.perRecipient.get('b@example.net')?.accepted).toBe(true);
    expect((await m.waitFor(1))[0]!.tls).toBeNull();
  });

  it('TLS required: no-starttls, closed before MAIL FROM', async () => {
    const m = await mx('plain');
    const err = await refusal(target(m), { requireTls: true });
    expect(err).toBeInstanceOf(NoAcceptableTls);
    expect(err).toMatchObject({ kind: 'no-starttls', code: 451, enhanced: '4.7.4', starttlsOffered: false, tls: null });
    expect(m.received).toHaveLength(0);
    expect(m.sessions[0]!.heloName).toBeNull(); // set on MAIL FROM: never reached
  });

  it('mode none ignores an offered STARTTLS, and says it was offered', async () => {
    const m = await mx('tls13');
    const session = await open(target(m), { allowTls: false });
    expect(session).toMatchObject({ starttlsOffered: true, tls: null });
    await session.send({ from: 'a@example.org', to: ['b@example.net'] }, BODY);
    expect((await m.waitFor(1))[0]!.tls).toBeNull();
  });
});

describe('the floor', () => {
  it.each(['weak-protocol', 'weak-cipher'] as const)('%s MX: handshake fails, never plaintext, even opportunistic', async (kind) => {
    const m = await mx(kind);
    const err = await refusal(target(m), { requireTls: false });
    expect(err).toBeInstanceOf(NoAcceptableTls);
    expect(err).toMatchObject({ kind: 'handshake-failed', starttlsOffered: true, tls: null, enhanced: '4.7.5', stage: 'starttls' });
    expect(m.received).toHaveLength(0);
    expect(m.sessions.every((s) => s.heloName === null)).toBe(true);
  });

  it('a 256-bit floor refuses a peer that only has AES-128', async () => {
    const m = await mx('tls12', { serverOptions: { ciphers: 'ECDHE-RSA-AES128-GCM-SHA256', maxVersion: 'TLSv1.2' } });
    const err = await refusal(target(m), { floor: { minVersion: 'TLSv1.2', minCipherBits: 256 } });
    expect(err).toMatchObject({ kind: 'handshake-failed' });
    // The same peer passes the default floor.
    const session = await open(target(m));
    expect(session.tls).toMatchObject({ protocol: 'TLSv1.2', cipher: 'ECDHE-RSA-AES128-GCM-SHA256', bits: 128 });
  });

  it('a TLSv1.3 floor refuses a TLS 1.2 peer', async () => {
    const m = await mx('tls12');
    expect(await refusal(target(m), { floor: { minVersion: 'TLSv1.3', minCipherBits: 128 } })).toMatchObject({ kind: 'handshake-failed' });
  });
});

describe('verification ca', () => {
  const caFile = writeTemp('connection-ca.pem', sharedTestCa().certPem);

  it('accepts a CA-issued certificate for the MX name', async () => {
    const m = await mx('tls13');
    const session = await open(target(m), { verification: 'ca', caFile });
    expect(session.tls).toMatchObject({ authorized: true, authorizationError: null, peerCertSubject: 'CN=mx.example.test' });
    expect(session.tls!.peerCertFingerprint256).toMatch(/^[0-9A-F:]{95}$/);
  });

  it('refuses a certificate for another name, after recording the negotiated TLS', async () => {
    const m = await mx('tls13');
    const err = await refusal(target(m, 'other.example.test'), { verification: 'ca', caFile });
    expect(err).toBeInstanceOf(NoAcceptableTls);
    expect(err).toMatchObject({ kind: 'verify-failed', starttlsOffered: true, enhanced: '4.7.5' });
    expect((err as NoAcceptableTls).tls).toMatchObject({ protocol: 'TLSv1.3', authorized: false, authorizationError: 'ERR_TLS_CERT_ALTNAME_INVALID' });
    expect((err as NoAcceptableTls).reason).toMatch(/does not name other\.example\.test/);
    expect(m.received).toHaveLength(0);
  });

  it('refuses a self-signed certificate', async () => {
    const m = await mx('selfsigned');
    const err = await refusal(target(m), { verification: 'ca', caFile });
    expect(err).toMatchObject({ kind: 'verify-failed' });
    expect((err as NoAcceptableTls).tls).toMatchObject({ authorized: false, authorizationError: 'DEPTH_ZERO_SELF_SIGNED_CERT' });
  });

  it('verification none encrypts to a self-signed peer and records the verdict', async () => {
    const m = await mx('selfsigned');
    const session = await open(target(m));
    expect(session.tls).toMatchObject({ protocol: 'TLSv1.3', authorized: false, authorizationError: 'DEPTH_ZERO_SELF_SIGNED_CERT' });
  });

  it('an unreadable CA file is a local, temporary error', async () => {
    const m = await mx('tls13');
    const err = await refusal(target(m), { verification: 'ca', caFile: '/nonexistent/ca.pem' });
    expect(err).toBeInstanceOf(SmtpError);
    expect(err).not.toBeInstanceOf(NoAcceptableTls);
    expect(err).toMatchObject({ code: 451, enhanced: '4.3.5', stage: 'tls-policy' });
    expect(m.sessions).toHaveLength(0);
  });

  it('mta-sts is not implemented yet: refused, temporarily', async () => {
    const m = await mx('tls13');
    expect(await refusal(target(m), { verification: 'mta-sts' })).toMatchObject({ kind: 'verify-failed', code: 451 });
  });
});

describe('transactions', () => {
  it('partial RCPT rejection gives per-recipient results', async () => {
    const m = await mx('reject-rcpt', { rejectRecipients: ['bad@example.net'] });
    const session = await open(target(m));
    const result = await session.send({ from: 'a@example.org', to: ['good@example.net', 'bad@example.net'] }, BODY);
    expect(result.perRecipient.get('good@example.net')).toMatchObject({ accepted: true, code: 250 });
    expect(result.perRecipient.get('bad@example.net')).toMatchObject({ accepted: false, code: 550, enhanced: '5.1.1' });
    expect(result.perRecipient.get('bad@example.net')!.response).toMatch(/User unknown/);
    expect((await m.waitFor(1))[0]!.envelope.to).toEqual(['good@example.net']);
  });

  it('every recipient refused is a result, not an error; the session goes on', async () => {
    const m = await mx('greylist');
    const session = await open(target(m));
    const first = await session.send({ from: 'a@example.org', to: ['x@example.net', 'y@example.net'] }, BODY);
    for (const rcpt of ['x@example.net', 'y@example.net']) {
      expect(first.perRecipient.get(rcpt)).toMatchObject({ accepted: false, code: 451, enhanced: '4.7.1' });
    }
    expect(session.usable).toBe(true);
    // Greylisting passes on the retry, over the same connection.
    const second = await session.send({ from: 'a@example.org', to: ['x@example.net', 'y@example.net'] }, BODY);
    expect([...second.perRecipient.values()].every((r) => r.accepted)).toBe(true);
    expect(m.sessions).toHaveLength(1);
  });

  it('carries two transactions over one session with reset()', async () => {
    const m = await mx('tls13');
    const session = await open(target(m));
    await session.send({ from: 'a@example.org', to: ['one@example.net'] }, BODY);
    await session.reset();
    await session.send({ from: '', to: ['two@example.net'] }, BODY);
    const received = await m.waitFor(2);
    expect(session.transactions).toBe(2);
    expect(m.sessions).toHaveLength(1);
    expect(m.sessions[0]!.transactions).toBe(2);
    expect(received.map((r) => r.envelope)).toEqual([
      { from: 'a@example.org', to: ['one@example.net'] },
      // The null sender (RFC 5321 §4.5.5), as a bounce goes out.
      { from: '', to: ['two@example.net'] },
    ]);
    expect(new Set(received.map((r) => r.sessionId)).size).toBe(1);
  });

  it('a reply after DATA keeps its code and enhanced status; the session stays usable', async () => {
    const m = await mx('tls13', {
      serverOptions: {
        onData(stream, _session, callback) {
          stream.resume();
          stream.once('end', () => callback(Object.assign(new Error('5.7.1 Message rejected as spam'), { responseCode: 554 })));
        },
      },
    });
    const session = await open(target(m));
    const err = await session.send({ from: 'a@example.org', to: ['b@example.net'] }, BODY).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SmtpError);
    expect(err).toMatchObject({ code: 554, enhanced: '5.7.1', stage: 'data', temporary: false });
    expect(session.usable).toBe(true);
  });

  it('a connection dropped mid-DATA is a temporary 4.4.2', async () => {
    const m = await mx('drop-mid-data');
    const session = await open(target(m));
    const err = await session.send({ from: 'a@example.org', to: ['b@example.net'] }, Buffer.concat([BODY, Buffer.alloc(256 * 1024, 'x')])).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SmtpError);
    expect(err).toMatchObject({ code: 451, enhanced: '4.4.2', temporary: true });
    expect(session.usable).toBe(false);
    await expect(session.send({ from: 'a@example.org', to: ['b@example.net'] }, BODY)).rejects.toMatchObject({ enhanced: '4.4.2' });
  });
});

describe('connection trouble', () => {
  it('nobody listening: 451 4.4.1 at stage connect', async () => {
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as net.AddressInfo).port;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    const err = await refusal({ host: 'mx.example.test', ip: '127.0.0.1', port, preference: 10 });
    expect(err).toBeInstanceOf(SmtpError);
    expect(err).not.toBeInstanceOf(NoAcceptableTls);
    expect(err).toMatchObject({ code: 451, enhanced: '4.4.1', stage: 'connect' });
    expect((err as SmtpError).reason).toMatch(/ECONNREFUSED/);
  });

  it('a 554 greeting keeps its code at stage greeting', async () => {
    const m = await mx('tls13', {
      serverOptions: {
        onConnect(_session, callback) {
          callback(Object.assign(new Error('5.7.1 Go away'), { responseCode: 554 }));
        },
      },
    });
    const err = await refusal(target(m));
    expect(err).toMatchObject({ code: 554, enhanced: '5.7.1', stage: 'greeting' });
  });

  it('a silent server times out at the greeting', async () => {
    const sockets: net.Socket[] = [];
    const server = net.createServer((s) => sockets.push(s));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanup.push(async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    });
    const port = (server.address() as net.AddressInfo).port;
    const err = await refusal({ host: 'mx.example.test', ip: '127.0.0.1', port, preference: 10 }, { timeouts: { connectMs: 300, greetingMs: 300, socketMs: 1000 } });
    expect(err).toMatchObject({ code: 451, enhanced: '4.4.2', stage: 'greeting' });
  });
});
