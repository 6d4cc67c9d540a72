/**
 * dns-stub: a tiny authoritative DNS server for tests, on 127.0.0.1 port 0.
 *
 * The relay resolves MX, A/AAAA, TXT (MTA-STS) and PTR (ingress reverse DNS) records
 * through a real resolver, so tests point that resolver here
 * (`resolver.setServers([stub.server])`) instead of
 * mocking `node:dns`: the code under test then exercises its real error handling
 * (ENOTFOUND for NXDOMAIN, ENODATA for NODATA, ESERVFAIL, ETIMEOUT).
 *
 * Policy, per RFC 1034/2308:
 * - a name that is neither in the zone nor an ancestor of a zone name → NXDOMAIN;
 * - a name that exists (or is an empty non-terminal) without the asked type → NOERROR
 *   with no answers (NODATA);
 * - CNAME is followed inside the zone, the chain and the target's records are answered;
 * - an entry's `failure` makes every query for that name answer SERVFAIL/REFUSED, or
 *   go unanswered ('timeout': pair it with `new Resolver({ timeout, tries: 1 })`).
 * Names are case-insensitive and a trailing dot is ignored. UDP and TCP (RFC 7766,
 * two-byte length prefix) share the same port.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import dnsPacket from 'dns-packet';
import type { Answer, Packet, Question } from 'dns-packet';

export interface MxRecord {
  preference: number;
  /** Host name of the MX; '.' with preference 0 is the RFC 7505 null MX. */
  exchange: string;
}

export interface ZoneEntry {
  MX?: MxRecord[];
  A?: string[];
  AAAA?: string[];
  /** One TXT record per item; an array item is one record made of several strings. */
  TXT?: Array<string | string[]>;
  CNAME?: string;
  /** Reverse DNS: on a name such as "1.0.0.127.in-addr.arpa". */
  PTR?: string[];
  failure?: 'SERVFAIL' | 'REFUSED' | 'timeout';
}

export type Zone = Record<string, ZoneEntry>;
export type RecordType = 'MX' | 'A' | 'AAAA' | 'TXT' | 'CNAME' | 'PTR';

export interface DnsQuery {
  name: string;
  type: string;
  transport: 'udp' | 'tcp';
}

export interface DnsStub {
  host: '127.0.0.1';
  port: number;
  /** 'host:port', ready for `Resolver#setServers([stub.server])`. */
  server: string;
  /** Replaces one key of a name's entry; `undefined` deletes that key. */
  set<K extends keyof ZoneEntry>(name: string, key: K, value: ZoneEntry[K] | undefined): void;
  /** Removes the name: it answers NXDOMAIN from now on. */
  remove(name: string): void;
  /** Every question asked so far, in order (to assert what the relay looked up). */
  queries: DnsQuery[];
  close(): Promise<void>;
}

const HOST = '127.0.0.1';
const TTL_S = 60;
/** RFC 1035 section 4.1.1 RCODE values. */
const RCODE = { NOERROR: 0, SERVFAIL: 2, NXDOMAIN: 3, REFUSED: 5 } as const;
/** A TXT character-string holds at most 255 octets (RFC 1035 section 3.3). */
const TXT_CHUNK_BYTES = 255;
/** CNAME chains longer than this are answered as they stand (loop guard). */
const MAX_CNAME_HOPS = 8;
const BIND_ATTEMPTS = 10;

function normalize(name: string): string {
  return name.toLowerCase().replace(/\.$/, '');
}

function splitTxt(text: string): Buffer[] {
  const bytes = Buffer.from(text, 'utf8');
  const chunks: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += TXT_CHUNK_BYTES) chunks.push(bytes.subarray(i, i + TXT_CHUNK_BYTES));
  return chunks.length ? chunks : [Buffer.alloc(0)];
}

function recordsOf(name: string, type: RecordType, entry: ZoneEntry): Answer[] {
  const base = { name, ttl: TTL_S, class: 'IN' as const };
  switch (type) {
    case 'MX':
      return (entry.MX ?? []).map((mx) => ({ ...base, type: 'MX', data: { preference: mx.preference, exchange: mx.exchange } }));
    case 'A':
      return (entry.A ?? []).map((ip) => ({ ...base, type: 'A', data: ip }));
    case 'AAAA':
      return (entry.AAAA ?? []).map((ip) => ({ ...base, type: 'AAAA', data: ip }));
    case 'TXT':
      return (entry.TXT ?? []).map((txt) => ({
        ...base,
        type: 'TXT',
        data: (Array.isArray(txt) ? txt : [txt]).flatMap(splitTxt),
      }));
    case 'CNAME':
      return entry.CNAME ? [{ ...base, type: 'CNAME', data: entry.CNAME }] : [];
    case 'PTR':
      return (entry.PTR ?? []).map((host) => ({ ...base, type: 'PTR', data: host }));
  }
}

/** The zone's view of one question: an rcode and answers, or null for "stay silent". */
function answer(zone: Map<string, ZoneEntry>, question: Question): { rcode: number; answers: Answer[] } | null {
  const exists = (name: string) => zone.has(name) || [...zone.keys()].some((key) => key.endsWith(`.${name}`));
  const answers: Answer[] = [];
  let name = question.name;
  for (let hop = 0; hop <= MAX_CNAME_HOPS; hop++) {
    const key = normalize(name);
    const entry = zone.get(key);
    if (entry?.failure === 'timeout') return null;
    if (entry?.failure) return { rcode: RCODE[entry.failure], answers: [] };
    if (!entry) {
      // Only the queried name itself decides NXDOMAIN; a dangling CNAME target leaves the chain as is.
      return { rcode: hop === 0 && !exists(key) ? RCODE.NXDOMAIN : RCODE.NOERROR, answers };
    }
    if (entry.CNAME && question.type !== 'CNAME') {
      answers.push(...recordsOf(name, 'CNAME', entry));
      name = entry.CNAME;
      continue;
    }
    const type = question.type as RecordType;
    if (['MX', 'A', 'AAAA', 'TXT', 'CNAME', 'PTR'].includes(type)) answers.push(...recordsOf(name, type, entry));
    return { rcode: RCODE.NOERROR, answers };
  }
  return { rcode: RCODE.NOERROR, answers };
}

function respond(zone: Map<string, ZoneEntry>, query: Packet): Buffer | null {
  const question = query.questions?.[0];
  const result = question ? answer(zone, question) : { rcode: RCODE.REFUSED, answers: [] };
  if (!result) return null;
  return dnsPacket.encode({
    type: 'response',
    id: query.id ?? 0,
    // Authoritative, echo RD, offer RA so stub resolvers take the answer as final.
    flags: dnsPacket.AUTHORITATIVE_ANSWER | ((query.flags ?? 0) & dnsPacket.RECURSION_DESIRED) | dnsPacket.RECURSION_AVAILABLE | result.rcode,
    questions: question ? [question] : [],
    answers: result.answers,
  });
}

async function bindBoth(): Promise<{ udp: dgram.Socket; tcp: net.Server; port: number }> {
  for (let attempt = 1; ; attempt++) {
    const udp = dgram.createSocket('udp4');
    await new Promise<void>((resolve, reject) => {
      udp.once('error', reject);
      udp.bind(0, HOST, () => resolve());
    });
    const port = udp.address().port;
    const tcp = net.createServer();
    try {
      await new Promise<void>((resolve, reject) => {
        tcp.once('error', reject);
        tcp.listen(port, HOST, () => resolve());
      });
      return { udp, tcp, port };
    } catch (err) {
      // The free UDP port can be taken on TCP by someone else; pick another pair.
      udp.close();
      if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || attempt >= BIND_ATTEMPTS) throw err;
    }
  }
}

export async function startDnsStub(initial: Zone = {}): Promise<DnsStub> {
  const zone = new Map<string, ZoneEntry>();
  for (const [name, entry] of Object.entries(initial)) zone.set(normalize(name), { ...entry });
  const queries: DnsQuery[] = [];
  const { udp, tcp, port } = await bindBoth();
  const sockets = new Set<net.Socket>();

  const handle = (message: Buffer, transport: DnsQuery['transport']): Buffer | null => {
    let query: Packet;
    try {
      query = dnsPacket.decode(message);
    } catch {
      return null; // not DNS: ignore, as a real server would drop garbage
    }
    for (const q of query.questions ?? []) queries.push({ name: q.name, type: q.type, transport });
    return respond(zone, query);
  };

  udp.on('message', (message, rinfo) => {
    const reply = handle(message, 'udp');
    if (reply) udp.send(reply, rinfo.port, rinfo.address);
  });

  tcp.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    let buffered = Buffer.alloc(0);
    socket.on('data', (chunk) => {
      buffered = Buffer.concat([buffered, chunk]);
      while (buffered.length >= 2 && buffered.length >= 2 + buffered.readUInt16BE(0)) {
        const length = buffered.readUInt16BE(0);
        const reply = handle(buffered.subarray(2, 2 + length), 'tcp');
        buffered = buffered.subarray(2 + length);
        if (reply) {
          const prefix = Buffer.alloc(2);
          prefix.writeUInt16BE(reply.length);
          socket.write(Buffer.concat([prefix, reply]));
        }
      }
    });
  });

  let closing: Promise<void> | undefined;
  return {
    host: HOST,
    port,
    server: `${HOST}:${port}`,
    queries,
    set(name, key, value) {
      const normalized = normalize(name);
      const entry = { ...zone.get(normalized) };
      if (value === undefined) delete entry[key];
      else entry[key] = value;
      zone.set(normalized, entry);
    },
    remove(name) {
      zone.delete(normalize(name));
    },
    close() {
      closing ??= (async () => {
        for (const socket of sockets) socket.destroy();
        await Promise.all([
          new Promise<void>((resolve) => udp.close(() => resolve())),
          new Promise<void>((resolve) => tcp.close(() => resolve())),
        ]);
      })();
      return closing;
    },
  };
}
