/**
 * src/net/dnssec.ts against a real validating resolver (Unbound in front of Knot,
 * test/helpers/dnssec-zone.ts) for what DNSSEC answers mean, and against a small
 * hostile DNS server of our own (UDP + TCP on one loopback port) for what a reply
 * may not do: wrong ids, wrong questions, garbage, truncation, silence.
 */
import crypto from 'node:crypto';
import dgram from 'node:dgram';
import net from 'node:net';
import dnsPacket from 'dns-packet';
import type { Answer, Packet } from 'dns-packet';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DnssecLookupError, makeDnssecResolver, type DnssecResolver } from '../../src/net/dnssec.ts';
import { startSignedZones, type SignedZones } from '../helpers/dnssec-zone.ts';

const EE_HEX = crypto.createHash('sha256').update('leaf key').digest('hex');
const TA_HEX = crypto.createHash('sha512').update('trust anchor').digest('hex');

/** The error a lookup rejects with (fails the test when it resolves). */
async function lookupError(promise: Promise<unknown>): Promise<DnssecLookupError> {
  const err = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(DnssecLookupError);
  return err as DnssecLookupError;
}

describe('DNSSEC lookups through a real validating resolver', () => {
  let zones: SignedZones;
  let resolver: DnssecResolver;

  beforeAll(async () => {
    zones = await startSignedZones({
      zones: [
        {
          origin: 'dane.test',
          signing: 'signed',
          records: [
            '@ MX 10 mx1',
            '@ MX 20 mx2',
            'mx1 A 127.0.0.1',
            'mx1 AAAA ::1',
            'mx2 A 127.0.0.2',
            `_25._tcp.mx1 TLSA 3 1 1 ${EE_HEX}`,
            `_25._tcp.mx1 TLSA 2 0 2 ${TA_HEX}`,
            'alias CNAME mx1',
            'outside CNAME mx.plain.example.',
            '_smtp._tls TXT "v=TLSRPTv1; " "rua=mailto:tlsrpt@dane.test"',
          ],
        },
        { origin: 'plain.example', signing: 'unsigned', records: ['@ MX 10 mx', 'mx A 127.0.0.5', `_25._tcp.mx TLSA 3 1 1 ${EE_HEX}`] },
        { origin: 'bogus.test', signing: 'bogus', records: ['@ MX 10 mx', 'mx A 127.0.0.6', `_25._tcp.mx TLSA 3 1 1 ${EE_HEX}`] },
      ],
    });
    resolver = makeDnssecResolver({ servers: [zones.resolver], timeoutMs: 2000 });
  });
  afterAll(async () => zones?.close());

  it('signed zone: MX records, secure', async () => {
    const mx = await resolver.mx('dane.test');
    expect(mx.status).toBe('secure');
    expect(mx.nxdomain).toBe(false);
    expect(mx.cnames).toEqual([]);
    expect([...mx.records].sort((a, b) => a.preference - b.preference)).toEqual([
      { preference: 10, exchange: 'mx1.dane.test' },
      { preference: 20, exchange: 'mx2.dane.test' },
    ]);
  });

  it('signed zone: A and AAAA together, secure', async () => {
    const addresses = await resolver.addresses('MX1.dane.test.');
    expect(addresses.status).toBe('secure');
    expect(addresses.records).toEqual(['127.0.0.1', '::1']);
  });

  it('signed zone: TLSA records parsed, secure', async () => {
    const tlsa = await resolver.tlsa('mx1.dane.test', 25);
    expect(tlsa.status).toBe('secure');
    const found = tlsa.records.map((r) => `${r.usage} ${r.selector} ${r.matchingType} ${r.data.toString('hex')}`).sort();
    expect(found).toEqual([`2 0 2 ${TA_HEX}`, `3 1 1 ${EE_HEX}`]);
  });

  it('signed zone: TXT strings of one record joined', async () => {
    const txt = await resolver.txt('_smtp._tls.dane.test');
    expect(txt).toMatchObject({ status: 'secure', records: ['v=TLSRPTv1; rua=mailto:tlsrpt@dane.test'] });
  });

  it('a secure CNAME chain is followed and reported, owner names in order', async () => {
    const addresses = await resolver.addresses('alias.dane.test');
    expect(addresses).toMatchObject({ status: 'secure', records: ['127.0.0.1', '::1'], cnames: ['alias.dane.test', 'mx1.dane.test'] });
  });

  it('a CNAME from the signed zone into an unsigned one is insecure', async () => {
    const addresses = await resolver.addresses('outside.dane.test');
    expect(addresses).toMatchObject({ status: 'insecure', records: ['127.0.0.5'], cnames: ['outside.dane.test', 'mx.plain.example'] });
  });

  it('signed zone: NXDOMAIN is reported, and secure (validated denial)', async () => {
    const missing = await resolver.addresses('nowhere.dane.test');
    expect(missing).toMatchObject({ status: 'secure', nxdomain: true, records: [] });
    const tlsa = await resolver.tlsa('mx2.dane.test', 25);
    expect(tlsa).toMatchObject({ status: 'secure', nxdomain: true, records: [] });
  });

  it('signed zone: a name without the type (NODATA) is empty, not NXDOMAIN', async () => {
    const txt = await resolver.txt('mx2.dane.test');
    expect(txt).toMatchObject({ status: 'secure', nxdomain: false, records: [] });
  });

  it('unsigned zone: the same records, insecure', async () => {
    expect(await resolver.mx('plain.example')).toMatchObject({ status: 'insecure', records: [{ preference: 10, exchange: 'mx.plain.example' }] });
    const tlsa = await resolver.tlsa('mx.plain.example', 25);
    expect(tlsa.status).toBe('insecure');
    expect(tlsa.records.map((r) => r.data.toString('hex'))).toEqual([EE_HEX]);
  });

  it('bogus zone: DnssecLookupError bogus, for every type', async () => {
    for (const lookup of [() => resolver.mx('bogus.test'), () => resolver.addresses('mx.bogus.test'), () => resolver.tlsa('mx.bogus.test', 25)]) {
      const err = await lookupError(lookup());
      expect(err.kind).toBe('bogus');
      expect(err.message).toMatch(/SERVFAIL/);
    }
    const err = await lookupError(resolver.tlsa('mx.bogus.test', 25));
    expect(err).toMatchObject({ name_: '_25._tcp.mx.bogus.test', qtype: 'TLSA' });
  });
});

// ---------------------------------------------------------------------------
// A hostile resolver: each test decides what it answers.

interface Asked {
  packet: Packet;
  raw: Buffer;
  transport: 'udp' | 'tcp';
  sourcePort: number;
}

/** Replies to send for one query (each one a whole DNS message); none = stay silent. */
type Handler = (asked: Asked) => Buffer[];

interface FakeDns {
  server: string;
  asked: Asked[];
  handle: Handler;
  close(): Promise<void>;
}

async function startFakeDns(): Promise<FakeDns> {
  for (let attempt = 1; ; attempt++) {
    const udp = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => udp.bind(0, '127.0.0.1', () => resolve()));
    const port = udp.address().port;
    const tcp = net.createServer();
    const listening = await new Promise<boolean>((resolve) => {
      tcp.once('error', () => resolve(false));
      tcp.listen(port, '127.0.0.1', () => resolve(true));
    });
    if (!listening) {
      udp.close();
      if (attempt >= 10) throw new Error('no free port pair');
      continue;
    }
    const sockets = new Set<net.Socket>();
    const fake: FakeDns = {
      server: `127.0.0.1:${port}`,
      asked: [],
      handle: () => [],
      close: async () => {
        for (const s of sockets) s.destroy();
        await Promise.all([new Promise<void>((r) => udp.close(() => r())), new Promise<void>((r) => tcp.close(() => r()))]);
      },
    };
    const ask = (raw: Buffer, transport: Asked['transport'], sourcePort: number): Buffer[] => {
      const asked = { packet: dnsPacket.decode(raw), raw, transport, sourcePort };
      fake.asked.push(asked);
      return fake.handle(asked);
    };
    udp.on('message', (raw, rinfo) => {
      for (const reply of ask(raw, 'udp', rinfo.port)) udp.send(reply, rinfo.port, rinfo.address);
    });
    tcp.on('connection', (socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => socket.destroy());
      let buffered = Buffer.alloc(0);
      socket.on('data', (chunk) => {
        buffered = Buffer.concat([buffered, chunk]);
        if (buffered.length < 2 || buffered.length < 2 + buffered.readUInt16BE(0)) return;
        for (const reply of ask(buffered.subarray(2, 2 + buffered.readUInt16BE(0)), 'tcp', socket.remotePort ?? 0)) {
          const prefix = Buffer.alloc(2);
          prefix.writeUInt16BE(reply.length);
          socket.write(Buffer.concat([prefix, reply]));
        }
      });
    });
    return fake;
  }
}

const RCODES = { NOERROR: 0, SERVFAIL: 2, NXDOMAIN: 3, REFUSED: 5 } as const;

/** A well-formed reply to `asked`, with overrides. */
function replyTo(
  asked: Asked,
  opts: { answers?: Answer[]; rcode?: keyof typeof RCODES; ad?: boolean; tc?: boolean; id?: number; name?: string } = {},
): Buffer {
  const question = asked.packet.questions![0]!;
  return dnsPacket.encode({
    type: 'response',
    id: opts.id ?? asked.packet.id,
    flags:
      dnsPacket.RECURSION_DESIRED |
      dnsPacket.RECURSION_AVAILABLE |
      (opts.ad ? dnsPacket.AUTHENTIC_DATA : 0) |
      (opts.tc ? dnsPacket.TRUNCATED_RESPONSE : 0) |
      RCODES[opts.rcode ?? 'NOERROR'],
    questions: [{ ...question, name: opts.name ?? question.name }],
    answers: opts.answers ?? [],
  });
}

const aRecords = (name: string, ...ips: string[]): Answer[] => ips.map((ip) => ({ type: 'A', name, ttl: 60, class: 'IN', data: ip }));

/** A reply to `asked` with one raw answer record (name pointer to the question) of `type` and `rdata`. */
function rawAnswer(asked: Asked, type: number, rdata: Buffer, rdlength = rdata.length): Buffer {
  const base = replyTo(asked);
  base.writeUInt16BE(1, 6); // ANCOUNT
  const rr = Buffer.alloc(12);
  rr.writeUInt16BE(0xc00c, 0);
  rr.writeUInt16BE(type, 2);
  rr.writeUInt16BE(1, 4);
  rr.writeUInt32BE(60, 6);
  rr.writeUInt16BE(rdlength, 10);
  return Buffer.concat([base, rr, rdata]);
}

describe('DNSSEC lookups against a hostile resolver', () => {
  let fake: FakeDns;
  const TIMEOUT_MS = 150;
  const resolverFor = (...servers: string[]) => makeDnssecResolver({ servers: servers.length ? servers : [fake.server], timeoutMs: TIMEOUT_MS });

  beforeAll(async () => {
    fake = await startFakeDns();
  });
  afterEach(() => {
    fake.asked.length = 0;
    fake.handle = () => [];
  });
  afterAll(async () => fake?.close());

  it('asks with RD, EDNS0 DO and a 1232-byte buffer; a fresh random id and source port each time', async () => {
    fake.handle = (asked) => [replyTo(asked, { answers: aRecords('h.test', '192.0.2.1') })];
    const resolver = resolverFor();
    for (let i = 0; i < 6; i++) await resolver.txt('h.test');
    const first = fake.asked[0]!.packet;
    expect(first.flags! & dnsPacket.RECURSION_DESIRED).toBeTruthy();
    expect(first.flags! & dnsPacket.CHECKING_DISABLED).toBeFalsy();
    const opt = first.additionals?.find((a) => a.type === 'OPT') as { udpPayloadSize: number; flags: number } | undefined;
    expect(opt).toMatchObject({ udpPayloadSize: 1232 });
    expect(opt!.flags & dnsPacket.DNSSEC_OK).toBeTruthy();
    expect(new Set(fake.asked.map((a) => a.packet.id)).size).toBeGreaterThan(1);
    expect(new Set(fake.asked.map((a) => a.sourcePort)).size).toBeGreaterThan(1);
  });

  it('the AD bit alone decides secure vs insecure', async () => {
    let ad = true;
    fake.handle = (asked) => [replyTo(asked, { ad, answers: aRecords('h.test', '192.0.2.1') })];
    const resolver = resolverFor();
    expect(await resolver.addresses('h.test')).toMatchObject({ status: 'secure', records: ['192.0.2.1'] });
    ad = false;
    expect(await resolver.addresses('h.test')).toMatchObject({ status: 'insecure', records: ['192.0.2.1'] });
  });

  it('addresses: secure only when both the A and the AAAA answer are', async () => {
    fake.handle = (asked) => [replyTo(asked, { ad: asked.packet.questions![0]!.type === 'A' })];
    expect((await resolverFor().addresses('h.test')).status).toBe('insecure');
  });

  it('a resolver that never answers: indeterminate after one retry', async () => {
    const err = await lookupError(resolverFor().mx('silent.test'));
    expect(err.kind).toBe('indeterminate');
    expect(err.message).toMatch(/no reply/);
    expect(fake.asked.length).toBe(2);
  });

  it('a port nobody listens on: indeterminate, without waiting for timeouts', async () => {
    const probe = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => probe.bind(0, '127.0.0.1', () => resolve()));
    const closedPort = probe.address().port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const started = Date.now();
    const err = await lookupError(makeDnssecResolver({ servers: [`127.0.0.1:${closedPort}`], timeoutMs: 5000 }).mx('x.test'));
    expect(err.kind).toBe('indeterminate');
    expect(Date.now() - started).toBeLessThan(2500);
  });

  it('a silent first server, then an answering second one', async () => {
    const silent = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => silent.bind(0, '127.0.0.1', () => resolve()));
    fake.handle = (asked) => [replyTo(asked, { ad: true, answers: aRecords('h.test', '192.0.2.7') })];
    try {
      const rr = await resolverFor(`127.0.0.1:${silent.address().port}`, fake.server).addresses('h.test');
      expect(rr.records).toEqual(['192.0.2.7']);
    } finally {
      silent.close();
    }
  });

  it('a truncated UDP reply is asked again over TCP, and the TCP answer is used', async () => {
    fake.handle = (asked) =>
      asked.transport === 'udp'
        ? [replyTo(asked, { tc: true, ad: true, answers: aRecords('big.test', '192.0.2.1') })]
        : [replyTo(asked, { ad: true, answers: aRecords('big.test', '192.0.2.1', '192.0.2.2', '192.0.2.3') })];
    const rr = await resolverFor().addresses('big.test');
    expect(rr).toMatchObject({ status: 'secure', records: ['192.0.2.1', '192.0.2.2', '192.0.2.3'] });
    expect(fake.asked.filter((a) => a.packet.questions![0]!.type === 'A').map((a) => a.transport)).toEqual(['udp', 'tcp']);
  });

  it('a TCP reply with the wrong id or still truncated: indeterminate', async () => {
    fake.handle = (asked) => (asked.transport === 'udp' ? [replyTo(asked, { tc: true })] : [replyTo(asked, { id: (asked.packet.id! + 1) & 0xffff })]);
    expect((await lookupError(resolverFor().mx('t.test'))).kind).toBe('indeterminate');
    fake.handle = (asked) => [replyTo(asked, { tc: true })];
    expect((await lookupError(resolverFor().mx('t.test'))).kind).toBe('indeterminate');
  });

  it('replies with a wrong id are dropped; the real one still counts', async () => {
    fake.handle = (asked) => [
      replyTo(asked, { id: (asked.packet.id! + 1) & 0xffff, ad: true, answers: aRecords('h.test', '203.0.113.66') }),
      replyTo(asked, { ad: true, answers: aRecords('h.test', '192.0.2.1') }),
    ];
    expect((await resolverFor().addresses('h.test')).records).toEqual(['192.0.2.1']);
  });

  it('only wrong-id replies: indeterminate', async () => {
    fake.handle = (asked) => [replyTo(asked, { id: (asked.packet.id! + 1) & 0xffff, ad: true, answers: aRecords('h.test', '203.0.113.66') })];
    const err = await lookupError(resolverFor().mx('h.test'));
    expect(err).toMatchObject({ kind: 'indeterminate' });
    expect(err.message).toMatch(/id does not match/);
  });

  it('replies to another question are dropped', async () => {
    fake.handle = (asked) => [replyTo(asked, { name: 'other.test', ad: true, answers: aRecords('other.test', '203.0.113.66') })];
    const err = await lookupError(resolverFor().addresses('h.test'));
    expect(err.kind).toBe('indeterminate');
    expect(err.message).toMatch(/question does not match/);
  });

  it('garbage and malformed layouts are dropped, never a crash', async () => {
    const hostile: Array<(asked: Asked) => Buffer> = [
      () => crypto.randomBytes(40),
      (asked) => asked.raw.subarray(0, 2), // a bare id
      (asked) => replyTo(asked).subarray(0, 14), // question cut short
      (asked) => rawAnswer(asked, 1, Buffer.from([192, 0, 2])), // A of 3 bytes
      (asked) => rawAnswer(asked, 28, Buffer.alloc(4)), // AAAA of 4 bytes
      (asked) => rawAnswer(asked, 1, Buffer.from([192, 0, 2, 1]), 400), // rdlength past the end
      (asked) => rawAnswer(asked, 15, Buffer.from([0, 10, 3, 0x6d, 0x78, 0x31, 0]), 4), // MX name past its rdata
      (asked) => rawAnswer(asked, 5, Buffer.from([0xc0, 0xff])), // CNAME pointing forwards
      (asked) => {
        const b = replyTo(asked);
        b.writeUInt16BE(0xffff, 6); // 65535 answers claimed
        return b;
      },
    ];
    // Each hostile reply comes first, the real one after it: dropped means the real one wins.
    for (const make of hostile) {
      fake.handle = (asked) => [make(asked), replyTo(asked, { ad: true, answers: aRecords('h.test', '192.0.2.1') })];
      expect(await resolverFor().addresses('h.test')).toMatchObject({ status: 'secure', records: ['192.0.2.1'] });
    }
    // Nothing but garbage: indeterminate, saying why.
    fake.handle = (asked) => [rawAnswer(asked, 1, Buffer.from([192, 0, 2]))];
    const err = await lookupError(resolverFor().mx('h.test'));
    expect(err.kind).toBe('indeterminate');
    expect(err.message).toMatch(/dropped a reply: type 1 record of 3 bytes/);
  });

  it('random corruption of a valid reply: a value or a DnssecLookupError, nothing else', async () => {
    const good = (asked: Asked) =>
      replyTo(asked, {
        ad: true,
        answers: [
          { type: 'CNAME', name: 'h.test', ttl: 60, class: 'IN', data: 'mx.h.test' },
          { type: 'TLSA', name: 'mx.h.test', ttl: 60, class: 'IN', data: { usage: 3, selector: 1, matchingType: 1, certificate: Buffer.alloc(32, 7) } },
        ],
      });
    let seed = 1;
    const next = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff);
    // Each corrupt reply is followed by the good one, so a dropped reply costs no timeout.
    fake.handle = (asked) => {
      const bad = Buffer.from(good(asked));
      for (let i = 0; i < 3; i++) bad[12 + (next() % (bad.length - 12))] = next() & 0xff;
      return [bad, good(asked)];
    };
    const resolver = makeDnssecResolver({ servers: [fake.server], timeoutMs: 1000 });
    for (let i = 0; i < 150; i++) {
      const outcome = await resolver.tlsa('h.test', 25).then(
        (rr) => rr.status,
        (err: unknown) => err,
      );
      if (outcome instanceof Error) expect(outcome).toBeInstanceOf(DnssecLookupError);
      else expect(['secure', 'insecure']).toContain(outcome);
    }
  });

  it('RCODEs: SERVFAIL is bogus; REFUSED and extended codes are indeterminate', async () => {
    fake.handle = (asked) => [replyTo(asked, { rcode: 'SERVFAIL' })];
    expect((await lookupError(resolverFor().tlsa('mx.test', 25))).kind).toBe('bogus');
    expect(fake.asked.length).toBe(1); // an answer, not a loss: not asked again
    fake.handle = (asked) => [replyTo(asked, { rcode: 'REFUSED' })];
    expect((await lookupError(resolverFor().tlsa('mx.test', 25))).kind).toBe('indeterminate');
    fake.handle = (asked) => {
      const b = dnsPacket.encode({
        type: 'response',
        id: asked.packet.id,
        flags: dnsPacket.RECURSION_AVAILABLE,
        questions: asked.packet.questions,
        additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 1232, extendedRcode: 1, flags: 0, options: [] } as unknown as Answer],
      });
      return [b];
    };
    expect((await lookupError(resolverFor().tlsa('mx.test', 25))).kind).toBe('indeterminate');
  });

  it('NXDOMAIN carries its AD bit', async () => {
    fake.handle = (asked) => [replyTo(asked, { rcode: 'NXDOMAIN', ad: true })];
    expect(await resolverFor().mx('gone.test')).toMatchObject({ status: 'secure', nxdomain: true, records: [] });
  });

  it('records of other owners, types or classes are not taken', async () => {
    fake.handle = (asked) => [
      replyTo(asked, {
        ad: true,
        answers: [
          ...aRecords('elsewhere.test', '203.0.113.1'),
          { type: 'A', name: 'h.test', ttl: 60, class: 'CH', data: '203.0.113.2' },
          { type: 'TXT', name: 'h.test', ttl: 60, class: 'IN', data: 'not an address' },
          ...aRecords('h.test', '192.0.2.9'),
        ],
      }),
    ];
    expect((await resolverFor().addresses('h.test')).records).toEqual(['192.0.2.9']);
  });

  it('CNAME loops, oversize sets and non-host names: indeterminate', async () => {
    fake.handle = (asked) => [
      replyTo(asked, {
        answers: [
          { type: 'CNAME', name: 'a.test', ttl: 60, class: 'IN', data: 'b.test' },
          { type: 'CNAME', name: 'b.test', ttl: 60, class: 'IN', data: 'a.test' },
        ],
      }),
    ];
    expect((await lookupError(resolverFor().mx('a.test'))).message).toMatch(/loops/);
    fake.handle = (asked) => [replyTo(asked, { answers: aRecords('h.test', ...Array.from({ length: 65 }, (_, i) => `10.0.0.${i}`)) })];
    expect((await lookupError(resolverFor().addresses('h.test'))).message).toMatch(/65 A records/);
    fake.handle = (asked) => [replyTo(asked, { answers: [{ type: 'MX', name: 'h.test', ttl: 60, class: 'IN', data: { preference: 1, exchange: 'bad name.test' } }] })];
    expect((await lookupError(resolverFor().mx('h.test'))).kind).toBe('indeterminate');
    expect((await lookupError(resolverFor().mx('not a name'))).message).toMatch(/not a valid host name/);
  });

  it('a null MX (".") is passed on as such', async () => {
    fake.handle = (asked) => [replyTo(asked, { ad: true, answers: [{ type: 'MX', name: 'h.test', ttl: 60, class: 'IN', data: { preference: 0, exchange: '.' } }] })];
    expect((await resolverFor().mx('h.test')).records).toEqual([{ preference: 0, exchange: '.' }]);
  });

  it('server specs: ip, ip:port, [ipv6]:port; names refused', () => {
    expect(() => makeDnssecResolver({ servers: ['127.0.0.1', '127.0.0.1:5353', '::1', '[::1]:5353'], timeoutMs: 100 })).not.toThrow();
    expect(() => makeDnssecResolver({ servers: ['resolver.example'], timeoutMs: 100 })).toThrow(/IP address/);
    expect(() => makeDnssecResolver({ servers: ['127.0.0.1:99999'], timeoutMs: 100 })).toThrow(/IP address/);
  });
});
