// Where mail for a domain goes: the hosts to try, in order.
//
// Policy, in the order it applies:
// - a static route ("host:port", IPv6 as "[::1]:25") wins and skips MX lookup, like
//   Postfix's transport map;
// - MX records sorted by preference, equal preferences shuffled so that load spreads
//   (RFC 5321 §5.1); each MX name becomes its A then AAAA addresses; names that do
//   not resolve are skipped; at most MX_ADDRESS_LIMIT addresses are returned
//   (Postfix smtp_mx_address_limit);
// - a single MX with an empty exchange ("." — RFC 7505 null MX) means the domain
//   accepts no mail: `null-mx`;
// - no MX records: the domain itself is the implicit MX, preference 0 (RFC 5321 §5.1);
// - a domain that does not exist is a permanent failure (550 5.1.2); timeouts,
//   SERVFAIL and the like are temporary (451 4.4.3).
// Lookups go to the configured resolvers only, never the system resolver behind
// their back; with none configured, c-ares' defaults (resolv.conf) are used.
//
// When DANE may apply (opts.dnssec, see policy/verification.ts), MX and address
// lookups go through the DNSSEC resolver instead (net/dnssec.ts), with the same
// rules, and each target says whether the answers that led to it were validated
// (RFC 7672 §2.2): an insecure MX RRset means DANE does not apply to the domain, an
// insecure address RRset means no TLSA lookup for that host. A bogus answer
// (validation failed) is never used: a bogus MX defers the domain (4.7.5), a bogus
// address skips the host; an answer that could not be had defers (4.4.3).
import dns from 'node:dns';
import net from 'node:net';
import { SmtpError } from '../smtp-error.ts';
import type { MxFacts } from './record.ts';
import { errorCode, makeResolver } from '../net/dns.ts';
import { DnssecLookupError, type DnssecResolver, type SecureRRset } from '../net/dnssec.ts';

/** What DNSSEC said about the names that led to one address (the DNSSEC path only). */
export interface SecureNames {
  /** The MX RRset (or, for the implicit MX, its absence) validated. */
  readonly mxSecure: boolean;
  /** The host's address records, and any CNAME chain to them, validated. */
  readonly addressSecure: boolean;
  /** The fully CNAME-expanded host name when the addresses came through CNAMEs (RFC 7672 §2.2.3), else null. */
  readonly expandedName: string | null;
}

/** One address to connect to. `host` is the MX (or route) name the certificate must carry. */
export interface MxTarget extends MxFacts {
  readonly ip: string;
  /** Set by the DNSSEC path only. */
  readonly dnssec?: SecureNames;
}

/** A DNSSEC lookup that may not be used: `bogus` (validation failed) or `indeterminate` (no answer). */
export class SecureLookupFailed extends SmtpError {
  readonly kind: 'bogus' | 'indeterminate';
  constructor(kind: 'bogus' | 'indeterminate', domain: string, what: string) {
    // RFC 3463: X.7.5 cryptographic failure for an answer that failed validation; X.4.3 directory server failure otherwise.
    super(451, kind === 'bogus' ? '4.7.5' : '4.4.3', 'dns', `DNSSEC lookup for ${domain} failed, will retry`, `${what} (${kind}, RFC 7672 §2.1.1)`);
    this.name = 'SecureLookupFailed';
    this.kind = kind;
  }
}

export type Destination =
  | { readonly kind: 'route' | 'mx' | 'implicit'; readonly hosts: readonly MxTarget[] }
  | { readonly kind: 'null-mx' };

export interface ResolveOptions {
  /** Domain (lower case) → "host:port"; see config `delivery.routes`. */
  readonly routes: Readonly<Record<string, string>>;
  /** "ip" or "ip:port"; empty uses the resolver's defaults. */
  readonly dnsServers: readonly string[];
  /** Per-query timeout in ms (c-ares doubles it on each retry). */
  readonly timeoutMs: number;
  /** SMTP port of MX hosts (RFC 5321 §4.5.4.1: 25; tests change it). */
  readonly port: number;
  /** Source of randomness for equal-preference shuffling; tests pin it. */
  readonly random?: () => number;
  /** MX and address lookups through this validating resolver (DANE may apply); routes still use node:dns. */
  readonly dnssec?: DnssecResolver | null;
}

/** Addresses tried per destination at most (Postfix smtp_mx_address_limit default: 5). */
export const MX_ADDRESS_LIMIT = 5;

/** c-ares codes (node:dns) that mean "the name does not exist" and "it exists but has no such record". */
const NXDOMAIN = dns.NOTFOUND;
const NODATA = dns.NODATA;

type Lookup<T> = { ok: true; value: T } | { ok: false; code: string };

async function attempt<T>(query: Promise<T>): Promise<Lookup<T>> {
  try {
    return { ok: true, value: await query };
  } catch (err) {
    return { ok: false, code: errorCode(err) };
  }
}

function temporary(domain: string, what: string): SmtpError {
  return new SmtpError(451, '4.4.3', 'dns', `DNS lookup for ${domain} failed, will retry`, `${what} for ${domain}`);
}

/** "host:port" or "[v6]:port" (validated by the config schema). */
function parseRoute(route: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(route);
  if (!m) throw new SmtpError(451, '4.3.5', 'dns', 'bad route configuration', `route "${route}" is not host:port`);
  return { host: (m[1] ?? m[2])!, port: Number(m[3]) };
}

interface Addresses {
  ips: string[];
  /** Both lookups said NXDOMAIN. */
  nxdomain: boolean;
  /** A lookup failed in a way that may pass (timeout, SERVFAIL, refused). */
  temporaryError: string | null;
}

async function addressesOf(resolver: dns.promises.Resolver, name: string): Promise<Addresses> {
  if (net.isIP(name)) return { ips: [name], nxdomain: false, temporaryError: null };
  const [a, aaaa] = await Promise.all([attempt(resolver.resolve4(name)), attempt(resolver.resolve6(name))]);
  const ips: string[] = [];
  let temporaryError: string | null = null;
  for (const [type, result] of [['A', a], ['AAAA', aaaa]] as const) {
    if (result.ok) ips.push(...result.value);
    else if (result.code !== NXDOMAIN && result.code !== NODATA) temporaryError ??= `${type} lookup of ${name}: ${result.code}`;
  }
  const nxdomain = !a.ok && a.code === NXDOMAIN && !aaaa.ok && aaaa.code === NXDOMAIN;
  return { ips, nxdomain, temporaryError };
}

/** Fisher–Yates within each run of equal preference; the runs stay in ascending order. */
function orderByPreference(records: readonly dns.MxRecord[], random: () => number): dns.MxRecord[] {
  const byPreference = new Map<number, dns.MxRecord[]>();
  for (const record of records) {
    const group = byPreference.get(record.priority) ?? [];
    group.push(record);
    byPreference.set(record.priority, group);
  }
  const ordered: dns.MxRecord[] = [];
  for (const preference of [...byPreference.keys()].sort((x, y) => x - y)) {
    const group = byPreference.get(preference)!;
    for (let i = group.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [group[i], group[j]] = [group[j]!, group[i]!];
    }
    ordered.push(...group);
  }
  return ordered;
}

const isNullExchange = (exchange: string) => exchange === '' || exchange === '.';

export async function resolveDestination(domain: string, opts: ResolveOptions): Promise<Destination> {
  const name = domain.toLowerCase().replace(/\.$/, '');
  const resolver = makeResolver(opts);

  const route = opts.routes[name];
  if (route !== undefined) {
    const { host, port } = parseRoute(route);
    const found = await addressesOf(resolver, host);
    if (!found.ips.length) throw temporary(name, found.temporaryError ?? `route host ${host} has no address`);
    return { kind: 'route', hosts: found.ips.slice(0, MX_ADDRESS_LIMIT).map((ip) => ({ host, ip, port, preference: null })) };
  }

  if (opts.dnssec) return secureDestination(name, opts, opts.dnssec);
  const mx = await attempt(resolver.resolveMx(name));
  if (!mx.ok && mx.code !== NODATA && mx.code !== NXDOMAIN) throw temporary(name, `MX lookup: ${mx.code}`);

  if (!mx.ok || !mx.value.length) {
    // No MX: the domain is its own MX (RFC 5321 §5.1). An NXDOMAIN on MX is confirmed
    // by the address lookups, so only a domain that answers NXDOMAIN throughout bounces.
    const found = await addressesOf(resolver, name);
    if (found.ips.length) {
      return { kind: 'implicit', hosts: found.ips.slice(0, MX_ADDRESS_LIMIT).map((ip) => ({ host: name, ip, port: opts.port, preference: 0 })) };
    }
    if (found.temporaryError) throw temporary(name, found.temporaryError);
    if (found.nxdomain || (!mx.ok && mx.code === NXDOMAIN)) {
      throw new SmtpError(550, '5.1.2', 'dns', `Domain ${name} does not exist`, `NXDOMAIN for ${name}`);
    }
    throw new SmtpError(550, '5.1.2', 'dns', `Domain ${name} has no MX and no address`, `no MX, A or AAAA for ${name}`);
  }

  const records = mx.value;
  // RFC 7505 §3: a null MX is the only MX of its domain; mixed in with others it is ignored.
  if (records.length === 1 && isNullExchange(records[0]!.exchange)) return { kind: 'null-mx' };
  const ordered = orderByPreference(
    records.filter((r) => !isNullExchange(r.exchange)),
    opts.random ?? Math.random,
  );

  // Resolve in order, a batch at a time, until the address limit is reached: names
  // that fail to resolve make room for the next ones.
  const hosts: MxTarget[] = [];
  let temporaryError: string | null = null;
  let next = 0;
  while (hosts.length < MX_ADDRESS_LIMIT && next < ordered.length) {
    const batch = ordered.slice(next, next + MX_ADDRESS_LIMIT - hosts.length);
    next += batch.length;
    const found = await Promise.all(batch.map((record) => addressesOf(resolver, record.exchange)));
    batch.forEach((record, i) => {
      const result = found[i]!;
      temporaryError ??= result.temporaryError;
      for (const ip of result.ips) hosts.push({ host: record.exchange.toLowerCase(), ip, port: opts.port, preference: record.priority });
    });
  }
  if (!hosts.length) {
    // The MX names may be fixed soon (or the resolver may recover): defer, the queue lifetime bounds it.
    throw temporary(name, temporaryError ?? `no MX host of ${name} has an address`);
  }
  return { kind: 'mx', hosts: hosts.slice(0, MX_ADDRESS_LIMIT) };
}

/** The name the CNAME chain of `rr` ends at, or null when there was none. */
function expandedNameOf(rr: SecureRRset<unknown>, queried: string): string | null {
  const chain = rr.cnames.map((n) => n.toLowerCase().replace(/\.$/, ''));
  if (!chain.length) return null;
  const last = chain[chain.length - 1]!;
  return last === queried ? null : last;
}

async function secureLookup<T>(domain: string, what: string, query: () => Promise<SecureRRset<T>>): Promise<SecureRRset<T>> {
  try {
    return await query();
  } catch (err) {
    if (err instanceof DnssecLookupError) throw new SecureLookupFailed(err.kind, domain, `${what}: ${err.message}`);
    throw new SecureLookupFailed('indeterminate', domain, `${what}: ${(err as Error).message}`);
  }
}

interface SecureAddresses {
  readonly ips: readonly string[];
  readonly secure: boolean;
  readonly expandedName: string | null;
  readonly nxdomain: boolean;
}

async function secureAddressesOf(resolver: DnssecResolver, domain: string, host: string): Promise<SecureAddresses> {
  if (net.isIP(host)) return { ips: [host], secure: false, expandedName: null, nxdomain: false };
  const rr = await secureLookup(domain, `A/AAAA lookup of ${host}`, () => resolver.addresses(host));
  return { ips: rr.records, secure: rr.status === 'secure', expandedName: rr.status === 'secure' ? expandedNameOf(rr, host) : null, nxdomain: rr.nxdomain };
}

/** resolveDestination's MX path through the DNSSEC resolver (see the module comment). */
async function secureDestination(name: string, opts: ResolveOptions, resolver: DnssecResolver): Promise<Destination> {
  const mx = await secureLookup(name, `MX lookup for ${name}`, () => resolver.mx(name));
  const mxSecure = mx.status === 'secure';
  const target = (host: string, ip: string, preference: number, found: SecureAddresses): MxTarget => ({
    host,
    ip,
    port: opts.port,
    preference,
    dnssec: { mxSecure, addressSecure: found.secure, expandedName: found.expandedName },
  });

  if (!mx.records.length) {
    // No MX: the domain is its own MX (RFC 5321 §5.1); the secure denial of the MX RRset counts as a secure MX.
    const found = await secureAddressesOf(resolver, name, name);
    if (found.ips.length) return { kind: 'implicit', hosts: found.ips.slice(0, MX_ADDRESS_LIMIT).map((ip) => target(name, ip, 0, found)) };
    if (mx.nxdomain || found.nxdomain) throw new SmtpError(550, '5.1.2', 'dns', `Domain ${name} does not exist`, `NXDOMAIN for ${name}`);
    throw new SmtpError(550, '5.1.2', 'dns', `Domain ${name} has no MX and no address`, `no MX, A or AAAA for ${name}`);
  }
  if (mx.records.length === 1 && isNullExchange(mx.records[0]!.exchange)) return { kind: 'null-mx' };
  const ordered = orderByPreference(
    mx.records.filter((r) => !isNullExchange(r.exchange)).map((r) => ({ priority: r.preference, exchange: r.exchange.toLowerCase().replace(/\.$/, '') })),
    opts.random ?? Math.random,
  );

  const hosts: MxTarget[] = [];
  let failure: SecureLookupFailed | null = null;
  let next = 0;
  while (hosts.length < MX_ADDRESS_LIMIT && next < ordered.length) {
    const batch = ordered.slice(next, next + MX_ADDRESS_LIMIT - hosts.length);
    next += batch.length;
    const found = await Promise.all(
      batch.map((record) =>
        secureAddressesOf(resolver, name, record.exchange).catch((err: unknown) => {
          // A host whose addresses failed validation is skipped; the others may still do.
          if (err instanceof SecureLookupFailed) {
            failure ??= err;
            return null;
          }
          throw err;
        }),
      ),
    );
    batch.forEach((record, i) => {
      const result = found[i];
      if (result) for (const ip of result.ips) hosts.push(target(record.exchange, ip, record.priority, result));
    });
  }
  if (!hosts.length) throw failure ?? temporary(name, `no MX host of ${name} has an address`);
  return { kind: 'mx', hosts: hosts.slice(0, MX_ADDRESS_LIMIT) };
}
