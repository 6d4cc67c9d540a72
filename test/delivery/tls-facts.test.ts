import net from 'node:net';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { meetsFloor, readTlsFacts, tlsClientOptions } from '../../src/delivery/tls-facts.ts';
import { cipherBits } from '../../src/tls/cipher-bits.ts';
import type { Floor } from '../../src/policy/decision.ts';
import { sharedTestCa, writeTemp } from '../helpers/test-ca.ts';

const FLOOR: Floor = { minVersion: 'TLSv1.2', minCipherBits: 128 };

describe('cipherBits', () => {
  it.each([
    ['TLS_AES_256_GCM_SHA384', 256],
    ['TLS_AES_128_GCM_SHA256', 128],
    ['TLS_CHACHA20_POLY1305_SHA256', 256],
    ['ECDHE-RSA-AES128-GCM-SHA256', 128],
    ['ECDHE-ECDSA-AES256-GCM-SHA384', 256],
    ['ECDHE-RSA-CHACHA20-POLY1305', 256],
    ['AES256-SHA', 256],
    ['CAMELLIA128-SHA', 128],
    ['DHE-RSA-CAMELLIA256-SHA', 256],
    ['ARIA128-GCM-SHA256', 128],
    ['ECDHE-ARIA256-GCM-SHA384', 256],
    ['DES-CBC3-SHA', 112],
    ['TLS_RSA_WITH_3DES_EDE_CBC_SHA', 112],
    ['DES-CBC-SHA', 56],
    ['RC4-SHA', 128],
    ['EXP-RC4-MD5', 40],
    ['NULL-SHA256', 0],
    ['ECDHE-RSA-NULL-SHA', 0],
    ['TLS_RSA_WITH_AES_128_CBC_SHA', 128],
    ['SOMETHING-NEW', null],
  ] as const)('%s → %s', (name, bits) => {
    expect(cipherBits(name)).toBe(bits);
  });
});

describe('meetsFloor', () => {
  const facts = (protocol: string, cipher: string) => ({ protocol, cipher, bits: cipherBits(cipher) ?? 0 });
  it.each([
    [facts('TLSv1.3', 'TLS_AES_256_GCM_SHA384'), FLOOR, null],
    [facts('TLSv1.2', 'ECDHE-RSA-AES128-GCM-SHA256'), FLOOR, null],
    [facts('TLSv1.1', 'ECDHE-RSA-AES256-SHA'), FLOOR, 'protocol TLSv1.1 below floor TLSv1.2'],
    [facts('TLSv1', 'AES256-SHA'), FLOOR, 'protocol TLSv1 below floor TLSv1.2'],
    [facts('SSLv3', 'AES256-SHA'), FLOOR, 'protocol SSLv3 below floor TLSv1.2'],
    [facts('unknown', 'AES256-SHA'), FLOOR, 'protocol unknown below floor TLSv1.2'],
    [facts('TLSv1.2', 'ECDHE-RSA-AES256-GCM-SHA384'), { ...FLOOR, minVersion: 'TLSv1.3' }, 'protocol TLSv1.2 below floor TLSv1.3'],
    [facts('TLSv1.2', 'DES-CBC3-SHA'), FLOOR, 'cipher DES-CBC3-SHA has 112 bits, floor 128'],
    [facts('TLSv1.2', 'ECDHE-RSA-AES128-GCM-SHA256'), { ...FLOOR, minCipherBits: 256 }, 'cipher ECDHE-RSA-AES128-GCM-SHA256 has 128 bits, floor 256'],
    // RFC 7465: RC4 is never acceptable, whatever its key size says.
    [facts('TLSv1.2', 'RC4-SHA'), FLOOR, 'cipher RC4-SHA is never acceptable'],
    [facts('TLSv1.2', 'ECDHE-RSA-NULL-SHA'), FLOOR, 'cipher ECDHE-RSA-NULL-SHA is never acceptable'],
  ] as const)('%o with %o', (f, floor, expected) => {
    expect(meetsFloor(f, floor as Floor)).toBe(expected);
  });
});

describe('tlsClientOptions', () => {
  it('takes the floor into the handshake and never rejects in OpenSSL', () => {
    const o = tlsClientOptions(FLOOR, 'ca', { servername: 'mx.example.test' });
    expect(o).toMatchObject({ minVersion: 'TLSv1.2', rejectUnauthorized: false, servername: 'mx.example.test' });
    for (const banned of ['!aNULL', '!eNULL', '!EXPORT', '!RC4', '!3DES', '!DES', '!MD5']) expect(o.ciphers).toContain(banned);
    expect(tlsClientOptions({ ...FLOOR, minVersion: 'TLSv1.3' }, 'none').minVersion).toBe('TLSv1.3');
  });

  it('drops 128-bit suites for a 256-bit floor and names the TLS 1.3 suites', () => {
    const o = tlsClientOptions({ ...FLOOR, minCipherBits: 256 }, 'none');
    expect(o.ciphers).toContain('!AES128');
    expect(o.ciphers).toMatch(/^TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:/);
    expect(o.ciphers).not.toContain('TLS_AES_128');
  });

  it('leaves SNI out for IP literals (RFC 6066 §3) and loads the CA file', () => {
    expect(tlsClientOptions(FLOOR, 'none', { servername: '127.0.0.1' }).servername).toBeUndefined();
    expect(tlsClientOptions(FLOOR, 'none', { servername: '::1' }).servername).toBeUndefined();
    const caFile = writeTemp('tls-facts-ca.pem', sharedTestCa().certPem);
    expect(String(tlsClientOptions(FLOOR, 'ca', { caFile }).ca)).toBe(sharedTestCa().certPem);
  });

  it('is accepted by tls.createSecureContext', () => {
    for (const floor of [FLOOR, { ...FLOOR, minCipherBits: 256 }]) {
      const { ciphers, minVersion } = tlsClientOptions(floor, 'none');
      expect(() => tls.createSecureContext({ ciphers, minVersion })).not.toThrow();
    }
  });
});

describe('readTlsFacts on a live socket', () => {
  let server: tls.Server;
  let port = 0;
  const serverSaw: { protocol: string | null; cipher: string }[] = [];
  const leaf = sharedTestCa().issue({ commonName: 'mx1.example.test' });

  beforeAll(async () => {
    // TLS 1.0–1.1 only, as an old MX; OpenSSL 3 needs security level 0 for that.
    server = tls.createServer({ key: leaf.keyPem, cert: leaf.certPem, minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT:@SECLEVEL=0' }, (socket) => {
      serverSaw.push({ protocol: socket.getProtocol(), cipher: socket.getCipher().name });
      socket.end();
    });
    server.on('tlsClientError', () => {});
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as net.AddressInfo).port;
  });
  afterAll(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it('reads what was negotiated, and the floor refuses TLS 1.1', async () => {
    // A deliberately lenient client: only to see the facts of a weak session.
    const socket = tls.connect({ host: '127.0.0.1', port, servername: 'mx1.example.test', minVersion: 'TLSv1', ciphers: 'DEFAULT:@SECLEVEL=0', ca: sharedTestCa().certPem });
    await new Promise<void>((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
    const facts = readTlsFacts(socket);
    socket.destroy();
    expect(facts).toMatchObject({ protocol: 'TLSv1.1', authorized: true, authorizationError: null, peerCertSubject: 'CN=mx1.example.test' });
    expect(facts.cipher).toBe(serverSaw.at(-1)!.cipher);
    expect(facts.bits).toBe(cipherBits(facts.cipher));
    expect(facts.peerCertFingerprint256).toMatch(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
    expect(meetsFloor(facts, FLOOR)).toBe('protocol TLSv1.1 below floor TLSv1.2');
  });

  it('a client built from the floor cannot even negotiate with it', async () => {
    const socket = tls.connect({ host: '127.0.0.1', port, ...tlsClientOptions(FLOOR, 'none', { servername: 'mx1.example.test' }) });
    const err = await new Promise<Error>((resolve) => socket.once('error', resolve).once('secureConnect', () => resolve(new Error('connected'))));
    socket.destroy();
    expect((err as NodeJS.ErrnoException).code).toMatch(/^ERR_SSL_/);
  });

  it('records an unverified chain without refusing it', async () => {
    const socket = tls.connect({ host: '127.0.0.1', port, servername: 'mx1.example.test', minVersion: 'TLSv1', ciphers: 'DEFAULT:@SECLEVEL=0', rejectUnauthorized: false });
    await new Promise<void>((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
    const facts = readTlsFacts(socket);
    socket.destroy();
    expect(facts.authorized).toBe(false);
    expect(facts.authorizationError).toMatch(/UNABLE_TO_(GET_ISSUER_CERT_LOCALLY|VERIFY_LEAF_SIGNATURE)/);
  });
});
