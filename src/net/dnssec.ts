// DNS lookups whose DNSSEC status the relay can act on (DANE, RFC 7672 §2.1).
// node:dns cannot ask with the DO bit nor show the AD bit, so this module speaks
// DNS itself (dns-packet for the wire format) to the configured resolvers
// (delivery.dns.servers). It validates nothing: like Postfix's
// `smtp_dns_support_level = dnssec`, it trusts the AD bit because the operator
// declares those resolvers validating and reachable over loopback or a trusted link
// (delivery.dns.dnssec). Answers:
//
// - NOERROR / NXDOMAIN: the records, 'secure' when AD is set, else 'insecure';
// - SERVFAIL: the validating resolver judged the answer bogus (RFC 7672 §2.1.1);
// - anything else (timeouts, REFUSED, malformed replies): indeterminate.
// Bogus and indeterminate throw DnssecLookupError; callers defer on both.
//
// Every reply byte is hostile: the layout is walked and bounded before dns-packet
// decodes it, the id, flags and question must match the query (RFC 5452 §9.1), and
// record counts and sizes are capped.
import crypto from 'node:crypto';
import dgram from 'node:dgram';
import net from 'node:net';
import dnsPacket from 'dns-packet';
import type { Answer, Packet, RecordType } from 'dns-packet';
import { parseDnsServer, type DnsServer } from './dns-server.ts';

export type DnssecStatus = 'secure' | 'insecure';

export interface SecureRRset<T> {
  readonly status: DnssecStatus;
  readonly records: readonly T[];
  /** NXDOMAIN (records empty) */
  readonly nxdomain: boolean;
  /**
   * CNAME chain followed, owner names in order (empty when none): the queried name,
   * each target, ending with the name the records belong to (the expanded name).
   */
  readonly cnames: readonly string[];
}

export interface TlsaRecord {
  readonly usage: number;
  readonly selector: number;
  readonly matchingType: number;
  readonly data: Buffer;
}

/** SERVFAIL from a validating resolver = bogus (RFC 7672 §2.1.1); timeouts/REFUSED/malformed = indeterminate. Both mean: defer. */
export class DnssecLookupError extends Error {
  readonly kind: 'bogus' | 'indeterminate';
  /** The name asked for (`name` is Error's own). */
  readonly name_: string;
  readonly qtype: string;

  constructor(kind: 'bogus' | 'indeterminate', name: string, qtype: string, detail: string) {
    super(`${qtype} ${name}: ${detail}`);
    this.name = 'DnssecLookupError';
    this.kind = kind;
    this.name_ = name;
    this.qtype = qtype;
  }
}

export interface DnssecResolver {
  mx(domain: string): Promise<SecureRRset<{ preference: number; exchange: string }>>;
  /** A then AAAA; status secure only if every answer set is secure. */
  addresses(host: string): Promise<SecureRRset<string>>;
  /** _port._tcp.host */
  tlsa(host: string, port: number): Promise<SecureRRset<TlsaRecord>>;
  /** Joined strings per record (for TLS-RPT/_mta-sts if wanted). */
  txt(name: string): Promise<SecureRRset<string>>;
}

/** EDNS0 UDP payload size: the DNS Flag Day 2020 value, avoids IP fragmentation. */
const UDP_PAYLOAD_BYTES = 1232;
/** Queries per server before giving up on it (first try included): one retry. */
const TRIES = 2;
/** Records of the asked type in one answer; more is hostile or broken. */
const MAX_RECORDS = 64;
/** Resource records in all sections of one reply. */
const MAX_REPLY_RRS = 512;
const MAX_CNAME_HOPS = 8;
/** A TLSA "3 0 0" record carries a whole certificate; anything beyond this is not one. */
const MAX_TLSA_DATA_BYTES = 16_384;
/** RFC 1035 §2.3.4. */
const MAX_NAME_CHARS = 253;
const MAX_LABEL_CHARS = 63;
/** RFC 1035 §4.1.1 RCODE values. */
const RCODE = { NOERROR: 0, SERVFAIL: 2, NXDOMAIN: 3 } as const;
/** Fixed rdata sizes (RFC 1035 §3.4.1, RFC 3596 §2.2) and minimums (MX: preference + root, TLSA: three octets). */
const RDATA_EXACT: Readonly<Record<number, number>> = { 1: 4, 28: 16 };
const RDATA_MIN: Readonly<Record<number, number>> = { 15: 3, 5: 1, 52: 3 };
/** Types whose rdata is a single domain name or ends with one (CNAME; MX after the preference). */
const RDATA_NAME_OFFSET: Readonly<Record<number, number>> = { 5: 0, 15: 2 };

/** A reply was not usable: ignore it (UDP, may be spoofed) or fail the exchange (TCP). */
class MalformedReply extends Error {}

/** The name in canonical form (lower case, no trailing dot), or null when it is not a host name we may ask for. */
function normalizeName(name: string): string | null {
  const n = name.toLowerCase().replace(/\.$/, '');
  if (!n || n.length > MAX_NAME_CHARS) return null;
  return n.split('.').every((label) => label.length > 0 && label.length <= MAX_LABEL_CHARS && /^[a-z0-9_-]+$/.test(label)) ? n : null;
}

/** Bytes a (possibly compressed) name takes at `offset`; throws when it runs past the message or loops. */
function nameBytes(buf: Buffer, offset: number): number {
  let at = offset;
  for (;;) {
    if (at >= buf.length) throw new MalformedReply('name runs past the message');
    const len = buf[at]!;
    if (len === 0) return at + 1 - offset;
    if ((len & 0xc0) === 0xc0) {
      if (at + 2 > buf.length) throw new MalformedReply('name pointer runs past the message');
      // The pointer target is checked by dns-packet (only backwards, RFC 1035 §4.1.4).
      return at + 2 - offset;
    }
    if ((len & 0xc0) !== 0) throw new MalformedReply('bad label type');
    at += 1 + len;
  }
}

/**
 * Walks the reply's sections and checks every length before dns-packet reads it
 * (dns-packet trusts fixed rdata sizes and could read one record into the next).
 */
function checkLayout(buf: Buffer): void {
  if (buf.length < 12) throw new MalformedReply('shorter than a DNS header');
  const qd = buf.readUInt16BE(4);
  const rrs = buf.readUInt16BE(6) + buf.readUInt16BE(8) + buf.readUInt16BE(10);
  if (qd !== 1) throw new MalformedReply(`${qd} questions`);
  if (rrs > MAX_REPLY_RRS) throw new MalformedReply(`${rrs} records`);
  let at = 12;
  at += nameBytes(buf, at) + 4;
  for (let i = 0; i < rrs; i++) {
    at += nameBytes(buf, at);
    if (at + 10 > buf.length) throw new MalformedReply('record header runs past the message');
    const type = buf.readUInt16BE(at);
    const rdlength = buf.readUInt16BE(at + 8);
    const rdata = at + 10;
    at = rdata + rdlength;
    if (at > buf.length) throw new MalformedReply('record data runs past the message');
    const exact = RDATA_EXACT[type];
    if (exact !== undefined && rdlength !== exact) throw new MalformedReply(`type ${type} record of ${rdlength} bytes`);
    if (rdlength < (RDATA_MIN[type] ?? 0)) throw new MalformedReply(`type ${type} record of ${rdlength} bytes`);
    const nameAt = RDATA_NAME_OFFSET[type];
    if (nameAt !== undefined && nameBytes(buf, rdata + nameAt) !== rdlength - nameAt) throw new MalformedReply(`type ${type} name does not fill its record`);
  }
  if (at > buf.length) throw new MalformedReply('question runs past the message');
}

interface Reply {
  readonly rcode: number;
  readonly ad: boolean;
  readonly tc: boolean;
  readonly answers: readonly Answer[];
}

/** Decodes `buf` as the reply to `query`; throws MalformedReply when it is not. */
function readReply(buf: Buffer, query: { id: number; name: string; type: RecordType }): Reply {
  if (buf.length < 12) throw new MalformedReply('shorter than a DNS header');
  // Id first: most spoofed or stray datagrams stop here, before any parsing.
  if (buf.readUInt16BE(0) !== query.id) throw new MalformedReply('id does not match the query');
  const flags = buf.readUInt16BE(2);
  if (!(flags & 0x8000)) throw new MalformedReply('not a response');
  if ((flags >> 11) & 0xf) throw new MalformedReply('not a QUERY response');
  checkLayout(buf);
  let packet: Packet;
  try {
    packet = dnsPacket.decode(buf);
  } catch (err) {
    throw new MalformedReply(`undecodable: ${(err as Error).message}`);
  }
  const question = packet.questions?.[0];
  if (!question || question.name.toLowerCase().replace(/\.$/, '') !== query.name || question.type !== query.type || (question.class ?? 'IN') !== 'IN') {
    throw new MalformedReply('question does not match the query');
  }
  const opt = packet.additionals?.find((a) => a.type === 'OPT') as { extendedRcode?: number } | undefined;
  // An extended RCODE (RFC 6891 §6.1.3, e.g. BADVERS) is none of the answers we understand.
  const rcode = (flags & 0xf) | ((opt?.extendedRcode ?? 0) << 4);
  return { rcode, ad: (flags & dnsPacket.AUTHENTIC_DATA) !== 0, tc: (flags & dnsPacket.TRUNCATED_RESPONSE) !== 0, answers: packet.answers ?? [] };
}

function encodeQuery(id: number, name: string, type: RecordType): Buffer {
  return dnsPacket.encode({
    type: 'query',
    id,
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ type, name, class: 'IN' }],
    // EDNS0 with DO (RFC 4035 §3.2.1, RFC 6891): ask for DNSSEC records and the AD bit.
    additionals: [{ type: 'OPT', name: '.', udpPayloadSize: UDP_PAYLOAD_BYTES, flags: dnsPacket.DNSSEC_OK, options: [] } as unknown as Answer],
  });
}

type Exchange = { readonly ok: true; readonly reply: Reply } | { readonly ok: false; readonly why: string };

/**
 * One query over UDP from a fresh socket (a kernel-chosen random source port, RFC 5452 §9.2).
 * Replies that do not match are dropped and the wait goes on: a forger cannot end it early.
 */
function udpExchange(server: DnsServer, name: string, type: RecordType, timeoutMs: number): Promise<Exchange> {
  return new Promise((resolve) => {
    const id = crypto.randomInt(0, 0x10000);
    const socket = dgram.createSocket(net.isIPv6(server.host) ? 'udp6' : 'udp4');
    let dropped = '';
    let done = false;
    const finish = (result: Exchange) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.close();
      resolve(result);
    };
    const timer = setTimeout(() => finish({ ok: false, why: `no reply from ${server.label} within ${timeoutMs} ms${dropped}` }), timeoutMs);
    socket.on('error', (err) => finish({ ok: false, why: `${server.label}: ${(err as NodeJS.ErrnoException).code ?? err.message}` }));
    socket.on('message', (message) => {
      let reply: Reply;
      try {
        reply = readReply(message, { id, name, type });
      } catch (err) {
        // Whatever the bytes did to the parser, they are dropped, never thrown from an event handler.
        dropped = ` (dropped a reply: ${(err as Error).message})`;
        return;
      }
      finish({ ok: true, reply });
    });
    // Connected: only the server's datagrams arrive, and an ICMP refusal fails at once.
    socket.connect(server.port, server.host, () => {
      if (!done) socket.send(encodeQuery(id, name, type));
    });
  });
}

/** One query over TCP (RFC 7766), after a truncated UDP reply. */
function tcpExchange(server: DnsServer, name: string, type: RecordType, timeoutMs: number): Promise<Exchange> {
  return new Promise((resolve) => {
    const id = crypto.randomInt(0, 0x10000);
    const socket = net.connect({ host: server.host, port: server.port });
    let received = Buffer.alloc(0);
    let done = false;
    const finish = (result: Exchange) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(result);
    };
    const timer = setTimeout(() => finish({ ok: false, why: `no TCP reply from ${server.label} within ${timeoutMs} ms` }), timeoutMs);
    socket.on('error', (err) => finish({ ok: false, why: `${server.label} over TCP: ${(err as NodeJS.ErrnoException).code ?? err.message}` }));
    socket.on('close', () => finish({ ok: false, why: `${server.label} closed the TCP connection without a reply` }));
    socket.on('connect', () => {
      const message = encodeQuery(id, name, type);
      const prefix = Buffer.alloc(2);
      prefix.writeUInt16BE(message.length);
      socket.write(Buffer.concat([prefix, message]));
    });
    socket.on('data', (chunk) => {
      received = Buffer.concat([received, chunk]);
      if (received.length < 2 || received.length < 2 + received.readUInt16BE(0)) return;
      // The two-byte length bounds the reply to 64 KiB; one reply per connection.
      const message = received.subarray(2, 2 + received.readUInt16BE(0));
      try {
        const reply = readReply(message, { id, name, type });
        if (reply.tc) throw new MalformedReply('truncated over TCP');
        finish({ ok: true, reply });
      } catch (err) {
        // Our own connection: a wrong reply here is the server's, not a forger's.
        finish({ ok: false, why: `${server.label} over TCP: ${(err as Error).message}` });
      }
    });
  });
}

/** Asks the servers in turn, each up to TRIES times; the first NOERROR/NXDOMAIN wins. */
async function query(servers: readonly DnsServer[], timeoutMs: number, name: string, type: RecordType): Promise<Reply> {
  const failures: string[] = [];
  let servfail: string | null = null;
  // A server that answered (SERVFAIL, REFUSED…) is not asked again; one that was silent is.
  const answered = new Set<DnsServer>();
  for (let round = 0; round < TRIES; round++) {
    for (const server of servers) {
      if (answered.has(server)) continue;
      let result = await udpExchange(server, name, type, timeoutMs);
      // RFC 7766 §5 / RFC 1035 §4.2.1: a truncated reply is retried over TCP.
      if (result.ok && result.reply.tc) result = await tcpExchange(server, name, type, timeoutMs);
      if (!result.ok) {
        failures.push(result.why);
        continue;
      }
      const { reply } = result;
      if (reply.rcode === RCODE.NOERROR || reply.rcode === RCODE.NXDOMAIN) return reply;
      answered.add(server);
      if (reply.rcode === RCODE.SERVFAIL) servfail = `SERVFAIL from ${server.label} (validation failed or no answer, RFC 7672 §2.1.1)`;
      else failures.push(`rcode ${reply.rcode} from ${server.label}`);
    }
  }
  if (servfail) throw new DnssecLookupError('bogus', name, type, servfail);
  throw new DnssecLookupError('indeterminate', name, type, [...new Set(failures)].join('; ') || 'no DNS server configured');
}

const ownerOf = (a: Answer) => a.name.toLowerCase().replace(/\.$/, '');
const isIn = (a: Answer) => (('class' in a ? a.class : undefined) ?? 'IN') === 'IN';

/** One lookup: the records of `type` at `name` after following the answer's CNAME chain. */
async function lookup<T>(
  servers: readonly DnsServer[],
  timeoutMs: number,
  rawName: string,
  type: RecordType,
  read: (a: Answer, fail: (why: string) => never) => T,
): Promise<SecureRRset<T>> {
  const name = normalizeName(rawName);
  if (!name) throw new DnssecLookupError('indeterminate', rawName, type, 'not a valid host name');
  const reply = await query(servers, timeoutMs, name, type);
  const fail: (why: string) => never = (why) => {
    throw new DnssecLookupError('indeterminate', name, type, `malformed answer: ${why}`);
  };

  const chain = [name];
  let owner = name;
  const seen = new Set([name]);
  for (;;) {
    const cname = reply.answers.find((a) => a.type === 'CNAME' && isIn(a) && ownerOf(a) === owner);
    if (!cname || type === 'CNAME') break;
    const target = normalizeName(String((cname as { data: unknown }).data));
    if (!target) fail('CNAME target is not a host name');
    if (seen.has(target) || chain.length > MAX_CNAME_HOPS) fail('CNAME chain loops or is too long');
    seen.add(target);
    chain.push(target);
    owner = target;
  }
  const matching = reply.answers.filter((a) => a.type === type && isIn(a) && ownerOf(a) === owner);
  if (matching.length > MAX_RECORDS) fail(`${matching.length} ${type} records`);
  return {
    // The AD bit vouches for the whole answer, CNAMEs included (RFC 4035 §3.2.3).
    status: reply.ad ? 'secure' : 'insecure',
    records: matching.map((a) => read(a, fail)),
    nxdomain: reply.rcode === RCODE.NXDOMAIN,
    cnames: chain.length > 1 ? chain : [],
  };
}

export function makeDnssecResolver(opts: { servers: readonly string[]; timeoutMs: number }): DnssecResolver {
  const servers = opts.servers.map(parseDnsServer);
  const { timeoutMs } = opts;
  const dataOf = (a: Answer) => (a as { data: unknown }).data;

  const addressSet = (host: string, type: 'A' | 'AAAA') =>
    lookup(servers, timeoutMs, host, type, (a, fail) => {
      const ip = dataOf(a);
      return typeof ip === 'string' && net.isIP(ip) === (type === 'A' ? 4 : 6) ? ip : fail(`${type} record is not an address`);
    });

  return {
    mx: (domain) =>
      lookup(servers, timeoutMs, domain, 'MX', (a, fail) => {
        const mx = dataOf(a) as { preference?: unknown; exchange?: unknown };
        const exchange = String(mx.exchange);
        // '.' is the null MX (RFC 7505); anything else must be a host name.
        const host = exchange === '.' ? '.' : normalizeName(exchange);
        if (typeof mx.preference !== 'number' || !host) return fail('MX exchange is not a host name');
        return { preference: mx.preference, exchange: host };
      }),

    async addresses(host) {
      const [a, aaaa] = await Promise.all([addressSet(host, 'A'), addressSet(host, 'AAAA')]);
      return {
        status: a.status === 'secure' && aaaa.status === 'secure' ? 'secure' : 'insecure',
        records: [...a.records, ...aaaa.records],
        nxdomain: a.nxdomain && aaaa.nxdomain,
        cnames: a.cnames.length ? a.cnames : aaaa.cnames,
      };
    },

    async tlsa(host, port) {
      if (!Number.isInteger(port) || port < 1 || port > 65535) throw new DnssecLookupError('indeterminate', host, 'TLSA', `bad port ${port}`);
      return lookup(servers, timeoutMs, `_${port}._tcp.${host}`, 'TLSA', (a, fail) => {
        const t = dataOf(a) as { usage: number; selector: number; matchingType: number; certificate: Buffer };
        if (t.certificate.length > MAX_TLSA_DATA_BYTES) fail(`TLSA data of ${t.certificate.length} bytes`);
        return { usage: t.usage, selector: t.selector, matchingType: t.matchingType, data: Buffer.from(t.certificate) };
      });
    },

    txt: (name) =>
      lookup(servers, timeoutMs, name, 'TXT', (a) => {
        const chunks = dataOf(a);
        const list = Array.isArray(chunks) ? chunks : [chunks];
        return Buffer.concat(list.map((c) => (Buffer.isBuffer(c) ? c : Buffer.from(String(c))))).toString('utf8');
      }),
  };
}
