/**
 * Proves test/helpers/dnssec-zone.ts gives what DANE tests rely on: Unbound sets AD
 * for the signed zone only, answers SERVFAIL for the bogus one, and asks nothing
 * outside the test zones. Questions go out with dns-packet directly, not through
 * src/net/dnssec.ts, so the fixture is checked independently of the code it tests.
 */
import dgram from 'node:dgram';
import dnsPacket from 'dns-packet';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSignedZones, type SignedZones } from '../helpers/dnssec-zone.ts';

const TLSA_HEX = 'a'.repeat(64);

/** dns-packet's decoded reply, with the fields its types leave out. */
interface Reply {
  rcode: string;
  flags: number;
  answers: Array<{ type: string; data?: unknown }>;
}

/** One UDP question with the DO bit to 'ip:port'; the decoded reply. */
function ask(server: string, name: string, type: dnsPacket.RecordType): Promise<Reply> {
  const [host, port] = server.split(':') as [string, string];
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket('udp4');
    const timer = setTimeout(() => {
      socket.close();
      reject(new Error(`no answer from ${server} for ${name} ${type}`));
    }, 3000);
    socket.on('error', (err) => {
      clearTimeout(timer);
      socket.close();
      reject(err);
    });
    socket.on('message', (message) => {
      clearTimeout(timer);
      socket.close();
      resolve(dnsPacket.decode(message) as unknown as Reply);
    });
    const query = dnsPacket.encode({
      type: 'query',
      id: 4242,
      flags: dnsPacket.RECURSION_DESIRED,
      questions: [{ type, name, class: 'IN' }],
      additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 1232, flags: dnsPacket.DNSSEC_OK, options: [] } as unknown as dnsPacket.Answer],
    });
    // Connected: a closed port fails at once (ECONNREFUSED) rather than after the timeout.
    socket.connect(Number(port), host, () => socket.send(query));
  });
}

const ad = (p: Reply) => (p.flags & dnsPacket.AUTHENTIC_DATA) !== 0;

describe('startSignedZones', () => {
  let zones: SignedZones;

  beforeAll(async () => {
    zones = await startSignedZones({
      zones: [
        { origin: 'signed.test', signing: 'signed', records: ['@ MX 10 mx1', 'mx1 A 127.0.0.1', `_25._tcp.mx1 TLSA 3 1 1 ${TLSA_HEX}`] },
        { origin: 'plain.example', signing: 'unsigned', records: ['@ MX 10 mx1', 'mx1 A 127.0.0.2'] },
        { origin: 'bogus.test.', signing: 'bogus', records: ['@ MX 10 mx1', 'mx1 A 127.0.0.3'] },
      ],
    });
  });
  afterAll(async () => zones?.close());

  it('signed zone: answers with AD, the records as written', async () => {
    const mx = await ask(zones.resolver, 'signed.test', 'MX');
    expect(mx.rcode).toBe('NOERROR');
    expect(ad(mx)).toBe(true);
    expect(mx.answers.filter((a) => a.type === 'MX').map((a) => a.data)).toEqual([{ preference: 10, exchange: 'mx1.signed.test' }]);
    const tlsa = await ask(zones.resolver, '_25._tcp.mx1.signed.test', 'TLSA');
    expect(ad(tlsa)).toBe(true);
    const record = tlsa.answers.find((a) => a.type === 'TLSA');
    expect(record && Buffer.from((record.data as { certificate: Buffer }).certificate).toString('hex')).toBe(TLSA_HEX);
  });

  it('signed zone: a missing name is NXDOMAIN with AD (NSEC proof validated)', async () => {
    const reply = await ask(zones.resolver, 'nope.signed.test', 'A');
    expect(reply.rcode).toBe('NXDOMAIN');
    expect(ad(reply)).toBe(true);
  });

  it('the authoritative server really serves signatures, and never sets AD itself', async () => {
    const reply = await ask(zones.authoritative, 'mx1.signed.test', 'A');
    expect(reply.answers.map((a) => a.type)).toEqual(expect.arrayContaining(['A', 'RRSIG']));
    expect(ad(reply)).toBe(false);
  });

  it('unsigned zone: answers without AD', async () => {
    const reply = await ask(zones.resolver, 'mx1.plain.example', 'A');
    expect(reply.rcode).toBe('NOERROR');
    expect(reply.answers.map((a) => a.data)).toEqual(['127.0.0.2']);
    expect(ad(reply)).toBe(false);
  });

  it('bogus zone: SERVFAIL, though the authoritative server has the data', async () => {
    expect((await ask(zones.resolver, 'mx1.bogus.test', 'A')).rcode).toBe('SERVFAIL');
    expect((await ask(zones.resolver, 'bogus.test', 'MX')).rcode).toBe('SERVFAIL');
    expect((await ask(zones.authoritative, 'mx1.bogus.test', 'A')).answers.find((a) => a.type === 'A')?.data).toBe('127.0.0.3');
    // val-log-level 2 names the failure, for whoever debugs a DANE test.
    expect(zones.logs()).toMatch(/validation failure <mx1\.bogus\.test\. A IN>/);
  });

  it('names outside the test zones fail locally (nothing asked beyond loopback)', async () => {
    expect((await ask(zones.resolver, 'example.com', 'A')).rcode).toBe('SERVFAIL');
  });

  it('close() stops both servers', async () => {
    const other = await startSignedZones({ zones: [{ origin: 'short.test', signing: 'unsigned', records: ['a A 127.0.0.9'] }] });
    expect((await ask(other.resolver, 'a.short.test', 'A')).answers[0]?.data).toBe('127.0.0.9');
    await other.close();
    await expect(ask(other.resolver, 'a.short.test', 'A')).rejects.toThrow();
    await expect(ask(other.authoritative, 'a.short.test', 'A')).rejects.toThrow();
  });

  it('refuses nested zones (it makes no delegations)', async () => {
    await expect(
      startSignedZones({
        zones: [
          { origin: 'a.test', signing: 'signed', records: [] },
          { origin: 'b.a.test', signing: 'unsigned', records: [] },
        ],
      }),
    ).rejects.toThrow(/overlap/);
  });
});
