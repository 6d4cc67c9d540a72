/**
 * Proves the shared test fixtures (test/helpers/) behave as their comments promise,
 * so a failing delivery test can be blamed on the relay and not on its fixtures.
 * Everything talks to loopback only.
 */
import crypto from 'node:crypto';
import dns from 'node:dns';
import fs from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import dnsPacket from 'dns-packet';
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import type { SMTPConnectionOptions, SMTPConnectionSendInfo, SMTPEnvelope } from 'nodemailer/lib/smtp-connection';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startDnsStub, type DnsStub } from '../helpers/dns-stub.ts';
import { allocLoopbackIp, mxZone, startMx, startMxSet, type MxKind, type StartedMx } from '../helpers/mx.ts';
import { createTestCa, writeTemp, type TestCa } from '../helpers/test-ca.ts';

const MESSAGE = 'From: a@sender.test\r\nTo: b@example.test\r\nSubject: fixture\r\n\r\nhello\r\n';
/** What the relay's floor means on the client side: TLS >= 1.2, Node's default (>= 128-bit) ciphers. */
const FLOOR_TLS: tls.ConnectionOptions = { minVersion: 'TLSv1.2', ciphers: tls.DEFAULT_CIPHERS };

/** A nodemailer SMTP client connected to `mx` (the same client the relay uses). */
async function connect(mx: StartedMx, options: SMTPConnectionOptions = {}): Promise<SMTPConnection> {
  const client = new SMTPConnection({
    host: mx.host,
    port: mx.port,
    name: 'relay.sender.test',
    connectionTimeout: 2000,
    greetingTimeout: 2000,
    socketTimeout: 2000,
    socketCloseTimeout: 0,
    ...options,
  });
  // nodemailer reports most connect failures (TLS, STARTTLS refused) as 'error' events,
  // not through the connect callback; later errors reach the send callbacks.
  await new Promise<void>((resolve, reject) => {
    client.once('error', reject);
    client.connect((err) => (err ? reject(err) : resolve()));
  });
  client.on('error', () => {});
  return client;
}

function send(client: SMTPConnection, envelope: SMTPEnvelope, raw = MESSAGE): Promise<SMTPConnectionSendInfo> {
  return new Promise((resolve, reject) => client.send(envelope, raw, (err, info) => (err ? reject(err) : resolve(info!))));
}

function negotiated(client: SMTPConnection): { protocol: string | null; cipher: string } {
  const socket = client._socket as tls.TLSSocket;
  return { protocol: socket.getProtocol(), cipher: socket.getCipher().name };
}

describe('dns-stub', () => {
  let stub: DnsStub;
  let resolver: dns.promises.Resolver;
  beforeAll(async () => {
    stub = await startDnsStub({
      'example.test': { MX: [{ preference: 20, exchange: 'mx2.example.test' }, { preference: 10, exchange: 'mx1.example.test' }] },
      'MX1.Example.Test': { A: ['127.0.0.11'], AAAA: ['::1'] },
      'null.test': { MX: [{ preference: 0, exchange: '.' }] },
      '_mta-sts.example.test': { TXT: ['v=STSv1; id=20240101', ['long-', 'x'.repeat(300)]] },
      'alias.example.test': { CNAME: 'mx1.example.test' },
      'broken.test': { failure: 'SERVFAIL' },
      'silent.test': { failure: 'timeout' },
      'deep.sub.zone.test': { A: ['127.0.0.12'] },
    });
    resolver = new dns.promises.Resolver({ timeout: 300, tries: 1 });
    resolver.setServers([stub.server]);
  });
  afterAll(() => stub.close());

  it('answers MX, A, AAAA and TXT, names case-insensitively', async () => {
    const mx = await resolver.resolveMx('EXAMPLE.test');
    expect(mx.sort((a, b) => a.priority - b.priority)).toEqual([
      { exchange: 'mx1.example.test', priority: 10 },
      { exchange: 'mx2.example.test', priority: 20 },
    ]);
    expect(await resolver.resolve4('mx1.example.test')).toEqual(['127.0.0.11']);
    expect(await resolver.resolve6('mx1.example.test')).toEqual(['::1']);
    const txt = await resolver.resolveTxt('_mta-sts.example.test');
    expect(txt[0]).toEqual(['v=STSv1; id=20240101']);
    // A string over 255 octets travels as several character-strings of one record.
    expect(txt[1]!.join('')).toBe(`long-${'x'.repeat(300)}`);
  });

  it('serves the RFC 7505 null MX', async () => {
    expect(await resolver.resolveMx('null.test')).toEqual([{ exchange: '', priority: 0 }]);
  });

  it('tells NXDOMAIN from NODATA', async () => {
    await expect(resolver.resolveMx('nowhere.test')).rejects.toMatchObject({ code: 'ENOTFOUND' });
    await expect(resolver.resolveMx('mx1.example.test')).rejects.toMatchObject({ code: 'ENODATA' });
    // An empty non-terminal exists (RFC 8020), so it is NODATA too.
    await expect(resolver.resolve4('sub.zone.test')).rejects.toMatchObject({ code: 'ENODATA' });
  });

  it('follows CNAMEs, fails and stays silent on request', async () => {
    expect(await resolver.resolve4('alias.example.test')).toEqual(['127.0.0.11']);
    await expect(resolver.resolveMx('broken.test')).rejects.toMatchObject({ code: 'ESERVFAIL' });
    await expect(resolver.resolveMx('silent.test')).rejects.toMatchObject({ code: 'ETIMEOUT' });
  });

  it('changes answers with set() and remove(), and logs queries', async () => {
    stub.set('new.test', 'A', ['127.0.0.99']);
    expect(await resolver.resolve4('new.test')).toEqual(['127.0.0.99']);
    stub.set('new.test', 'A', undefined);
    await expect(resolver.resolve4('new.test')).rejects.toMatchObject({ code: 'ENODATA' });
    stub.remove('new.test');
    await expect(resolver.resolve4('new.test')).rejects.toMatchObject({ code: 'ENOTFOUND' });
    expect(stub.queries).toContainEqual({ name: 'new.test', type: 'A', transport: 'udp' });
  });

  it('answers over TCP on the same port', async () => {
    const query = dnsPacket.encode({ type: 'query', id: 7, questions: [{ type: 'MX', name: 'example.test' }] });
    const framed = Buffer.concat([Buffer.from([query.length >> 8, query.length & 0xff]), query]);
    const reply = await new Promise<Buffer>((resolve, reject) => {
      const socket = net.connect(stub.port, stub.host, () => socket.write(framed));
      let data = Buffer.alloc(0);
      socket.on('data', (chunk) => {
        data = Buffer.concat([data, chunk]);
        if (data.length >= 2 && data.length >= 2 + data.readUInt16BE(0)) {
          socket.end();
          resolve(data.subarray(2));
        }
      });
      socket.on('error', reject);
    });
    const packet = dnsPacket.decode(reply);
    expect(packet.id).toBe(7);
    expect(packet.answers).toHaveLength(2);
  });
});

describe('test-ca', () => {
  it('issues leaves that chain to the CA, with DNS and IP names', () => {
    const ca = createTestCa();
    const leaf = ca.issue({ commonName: 'mx1.example.test', altNames: ['mx1.example.test', '127.0.0.5'] });
    const cert = new crypto.X509Certificate(leaf.certPem);
    const caCert = new crypto.X509Certificate(ca.certPem);
    expect(cert.checkIssued(caCert)).toBe(true);
    expect(cert.verify(caCert.publicKey)).toBe(true);
    expect(cert.checkHost('mx1.example.test')).toBe('mx1.example.test');
    expect(cert.checkIP('127.0.0.5')).toBe('127.0.0.5');
    expect(cert.checkPrivateKey(crypto.createPrivateKey(leaf.keyPem))).toBe(true);
    expect(caCert.ca).toBe(true);

    const own = ca.selfSigned({ commonName: 'mx1.example.test' });
    expect(new crypto.X509Certificate(own.certPem).checkIssued(caCert)).toBe(false);

    const expired = ca.issue({ commonName: 'old.test', notBefore: new Date(Date.now() - 2e9), notAfter: new Date(Date.now() - 1e9) });
    expect(new Date(new crypto.X509Certificate(expired.certPem).validTo).getTime()).toBeLessThan(Date.now());

    const file = writeTemp('ca.pem', ca.certPem);
    expect(fs.readFileSync(file, 'utf8')).toBe(ca.certPem);
  });
});

describe('mx', () => {
  let ca: TestCa;
  const started: StartedMx[] = [];
  const clients: SMTPConnection[] = [];
  const mx = async (kind: MxKind, opts: Parameters<typeof startMx>[1] = {}) => {
    const server = await startMx(kind, { ca, name: 'mx1.example.test', host: allocLoopbackIp(), ...opts });
    started.push(server);
    return server;
  };
  const client = async (server: StartedMx, options?: SMTPConnectionOptions) => {
    const c = await connect(server, options);
    clients.push(c);
    return c;
  };
  /** Verifies the certificate against the test CA, as verification `ca` would. */
  const trusting = (server: StartedMx, extra: tls.ConnectionOptions = {}): SMTPConnectionOptions => ({
    requireTLS: true,
    tls: { ca: [ca.certPem], servername: server.name, rejectUnauthorized: true, ...extra },
  });

  beforeAll(() => {
    ca = createTestCa();
  });
  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    await Promise.all(started.splice(0).map((s) => s.close()));
  });

  it.each([
    ['tls13', 'TLSv1.3'],
    ['tls12', 'TLSv1.2'],
  ] as const)('%s: STARTTLS with a CA-issued certificate, negotiates %s', async (kind, protocol) => {
    const server = await mx(kind);
    const c = await client(server, trusting(server));
    expect(c.secure).toBe(true);
    expect(negotiated(c).protocol).toBe(protocol);
    await send(c, { from: 'a@sender.test', to: ['b@example.test'] });
    const [message] = await server.waitFor(1);
    expect(message!.tls).toEqual(negotiated(c));
    expect(message!.envelope).toEqual({ from: 'a@sender.test', to: ['b@example.test'] });
    expect(message!.raw.toString()).toBe(MESSAGE);
    expect(message!.receivedHeader).toContain(`using ${protocol} with cipher ${negotiated(c).cipher}`);
    expect(server.sessions[0]).toMatchObject({ secure: true, protocol, servername: 'mx1.example.test', heloName: 'relay.sender.test' });
  });

  it('counts transactions per connection, to show reuse', async () => {
    const server = await mx('tls13');
    const c = await client(server, trusting(server));
    await send(c, { from: 'a@sender.test', to: ['b@example.test'] });
    await send(c, { from: 'a@sender.test', to: ['c@example.test'] });
    await server.waitFor(2);
    expect(server.sessions).toHaveLength(1);
    expect(server.sessions[0]!.transactions).toBe(2);
  });

  it('plain: no STARTTLS, refused even when required', async () => {
    const server = await mx('plain');
    expect(server.certPem).toBeNull();
    const c = await client(server);
    expect(c.secure).toBe(false);
    await send(c, { from: 'a@sender.test', to: ['b@example.test'] });
    expect((await server.waitFor(1))[0]!.tls).toBeNull();
    await expect(connect(server, { requireTLS: true })).rejects.toThrow(/STARTTLS/);
  });

  it('selfsigned: encrypts, but fails CA verification', async () => {
    const server = await mx('selfsigned');
    await expect(connect(server, trusting(server))).rejects.toMatchObject({ code: 'ESOCKET' });
    const c = await client(server, { requireTLS: true, tls: { rejectUnauthorized: false } });
    expect(c.secure).toBe(true);
    expect((c._socket as tls.TLSSocket).authorized).toBe(false);
  });

  it.each([
    // [kind, lenient client TLS options, protocol and cipher the lenient client gets]
    ['weak-protocol', { minVersion: 'TLSv1', ciphers: 'DEFAULT:@SECLEVEL=0' }, { protocol: 'TLSv1.1', cipher: 'ECDHE-RSA-AES256-SHA' }],
    // DEFAULT carries !eNULL, which nothing later can undo: start from ALL.
    ['weak-cipher', { ciphers: 'ALL:eNULL:@SECLEVEL=0' }, { protocol: 'TLSv1.2', cipher: 'ECDHE-RSA-NULL-SHA' }],
  ] as const)('%s: below the floor, reachable only by a lenient client', async (kind, lenient, expected) => {
    const server = await mx(kind);
    await expect(connect(server, trusting(server, FLOOR_TLS))).rejects.toMatchObject({
      code: 'ESOCKET',
      message: expect.stringMatching(/alert (protocol version|handshake failure)/),
    });
    const c = await client(server, trusting(server, lenient));
    expect(negotiated(c)).toEqual(expected);
    await send(c, { from: 'a@sender.test', to: ['b@example.test'] });
    expect((await server.waitFor(1))[0]!.tls).toEqual(expected);
  });

  it('greylist: 451 4.7.1 on first RCPT per pair, 250 on retry', async () => {
    const server = await mx('greylist');
    const c = await client(server, trusting(server));
    const envelope = { from: 'a@sender.test', to: ['b@example.test'] };
    await expect(send(c, envelope)).rejects.toMatchObject({ code: 'EENVELOPE', responseCode: 451, response: expect.stringMatching(/^451 4\.7\.1 /) });
    // The failed transaction leaves MAIL open on the server: RSET before retrying.
    await new Promise<void>((resolve, reject) => c.reset((err) => (err ? reject(err) : resolve())));
    await send(c, envelope);
    expect(await server.waitFor(1)).toHaveLength(1);
  });

  it('drop-mid-data: the client sees the connection die, nothing is received', async () => {
    const server = await mx('drop-mid-data');
    const c = await client(server, trusting(server));
    // Even a message that fits one chunk is cut before the final reply.
    await expect(send(c, { from: 'a@sender.test', to: ['b@example.test'] })).rejects.toMatchObject({ code: 'ECONNECTION' });
    expect(server.received).toHaveLength(0);
    expect(server.sessions[0]!.dropped).toBe(true);
  });

  it('reject-rcpt: 550 5.1.1 for listed recipients only', async () => {
    const server = await mx('reject-rcpt', { rejectRecipients: ['Nobody@example.test'] });
    const c = await client(server, trusting(server));
    const info = await send(c, { from: 'a@sender.test', to: ['nobody@example.test', 'b@example.test'] });
    expect(info.accepted).toEqual(['b@example.test']);
    expect(info.rejected).toEqual(['nobody@example.test']);
    expect(info.rejectedErrors?.[0]).toMatchObject({ responseCode: 550, response: expect.stringMatching(/^550 5\.1\.1 /) });
    expect((await server.waitFor(1))[0]!.envelope.to).toEqual(['b@example.test']);
  });

  it('startMxSet + mxZone: one port, several loopback addresses, resolvable', async () => {
    const set = await startMxSet([
      { kind: 'tls13', name: 'mx1.example.test', ca },
      { kind: 'plain', name: 'mx2.example.test' },
      { kind: 'tls12', name: 'mx3.example.test', ca },
    ]);
    const stub = await startDnsStub(mxZone('example.test', set.mxs));
    try {
      expect(new Set(set.mxs.map((m) => m.port))).toEqual(new Set([set.port]));
      expect(new Set(set.mxs.map((m) => m.host)).size).toBe(3);
      const resolver = new dns.promises.Resolver();
      resolver.setServers([stub.server]);
      const records = (await resolver.resolveMx('example.test')).sort((a, b) => a.priority - b.priority);
      expect(records.map((r) => r.exchange)).toEqual(['mx1.example.test', 'mx2.example.test', 'mx3.example.test']);
      const mx3 = set.byName('mx3.example.test');
      const [ip] = await resolver.resolve4(mx3.name);
      const c = await client({ ...mx3, host: ip! }, trusting(mx3));
      expect(negotiated(c).protocol).toBe('TLSv1.2');
    } finally {
      await Promise.all([set.close(), stub.close()]);
    }
  });
});
