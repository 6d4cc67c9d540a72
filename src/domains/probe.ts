// Probing a recipient domain the way a delivery would meet it, without sending
// anything: its MX hosts (or static route), and for each address whether it
// answers, whether it offers STARTTLS, what TLS it negotiates, which certificate
// it shows and whether that certificate would pass `verification: ca`; plus the
// domain's MTA-STS policy. `sealrelay check-domain` prints it, the prober
// (prober.ts) keeps domain knowledge fresh with it.
//
// Policy:
// - the same code paths as delivery: resolveDestination (routes win, RFC 7505 null
//   MX, implicit MX) and openSession under the configured floor, so the answer is
//   what the relay would see — never a second, friendlier client;
// - the session is opened with verification `none`, TLS allowed and not required, so
//   that a peer with a bad certificate or no STARTTLS still yields its facts; the
//   certificate is then judged here as `ca` would judge it (chain to tls.ca_file or
//   the system store, and the MX name: the socket's `authorized`, which covers both
//   because the session sends the MX name as SNI);
// - nothing is sent: EHLO, STARTTLS, EHLO, QUIT;
// - every address is probed at once, each bounded by delivery.connect_timeout_ms +
//   greeting_timeout_ms (nodemailer's setup deadline) and QUIT's own bound, and the
//   MTA-STS fetch by mta_sts.timeout_ms, so a probe ends within about one MX's worth
//   of timeouts whatever the domain does;
// - with delivery.dns.dnssec, MX and addresses come through the validating resolver
//   as delivery gets them, each host's TLSA records are looked up (dane-target.ts),
//   and a host with a usable set is probed under DANE: the session's certificate is
//   matched against the set exactly as delivery would (a mismatch is the probe's error).
import { readFileSync } from 'node:fs';
import type { Config } from '../config/schema.ts';
import { NoAcceptableTls, openSession, type SessionOptions } from '../delivery/connection.ts';
import { daneTargetOf, daneVerdict, type DaneRequirement, type DaneTarget } from '../delivery/dane-target.ts';
import type { DaneFacts, TlsFacts } from '../delivery/record.ts';
import { resolveDestination, type MxTarget } from '../delivery/resolve-mx.ts';
import { makeDnssecResolver, type DnssecResolver } from '../net/dnssec.ts';
import { meetsFloor } from '../delivery/tls-facts.ts';
import { createLogger, type Logger } from '../log.ts';
import type { Floor } from '../policy/decision.ts';
import { SmtpError } from '../smtp-error.ts';
import { checkMx, fetchMtaStsPolicy, type MtaStsMode } from './mta-sts.ts';

export interface ProbeOptions {
  readonly config: Config;
  /** One line per step ("resolving MX…", "mx1 [192.0.2.1]:25: connecting…"), for a progress display. */
  readonly onProgress?: (event: string) => void;
  /** Session debug lines go here; silent by default. */
  readonly logger?: Logger;
  /** Order among equal MX preferences (resolve-mx shuffles them); tests pin it. */
  readonly random?: () => number;
  /** Clock (ms since the epoch) for `probedAt` and certificate expiry; tests pin it. */
  readonly now?: () => number;
}

/** The certificate an MX showed and how `verification: ca` would judge it. */
export interface CertificateReport {
  readonly subject: string | null;
  readonly fingerprint256: string | null;
  /** notAfter, ISO 8601. */
  readonly notAfter: string | null;
  /** Whole days from the probe to notAfter; negative once expired. */
  readonly daysLeft: number | null;
  /** Chain to our trust store and the MX name both verified: `verification: ca` would accept it. */
  readonly authorized: boolean;
  /** Why not (OpenSSL's code, e.g. DEPTH_ZERO_SELF_SIGNED_CERT, CERT_HAS_EXPIRED, ERR_TLS_CERT_ALTNAME_INVALID). */
  readonly authorizationError: string | null;
}

export interface MxProbe {
  /** The MX (or route) name: SNI and the name the certificate must carry. */
  readonly host: string;
  readonly ip: string;
  readonly port: number;
  /** MX preference; null for a static route. */
  readonly preference: number | null;
  /** A TCP connection opened (the SMTP greeting may still have failed: see `error`). */
  readonly reachable: boolean;
  /** Did the host advertise STARTTLS; null when we never saw its EHLO reply. */
  readonly starttlsOffered: boolean | null;
  /** Negotiated TLS, read from the session's socket; null without TLS. */
  readonly tls: TlsFacts | null;
  /** Did the negotiated TLS meet the floor (`problem` says why not); null without TLS. */
  readonly floor: { readonly ok: boolean; readonly problem: string | null } | null;
  readonly certificate: CertificateReport | null;
  /** What went wrong with this address: connection refused, handshake failed, a refused greeting… */
  readonly error: { readonly stage: string; readonly reason: string } | null;
  /** DANE for this host as delivery would record it (matched, mismatch, no-usable-tlsa…); null without delivery.dns.dnssec. */
  readonly dane?: DaneFacts | null;
  readonly durationMs: number;
}

/** DNSSEC as delivery would see it: off, or the MX RRset's validation status. */
export interface DnssecReport {
  /** delivery.dns.dnssec: the relay looks DANE up at all. */
  readonly enabled: boolean;
  /** The MX RRset (or its absence) validated: DANE can apply to the domain (RFC 7672 §2.2.1); null when unknown. */
  readonly mxSecure: boolean | null;
}

export interface DestinationReport {
  /** `route`: delivery.routes names the host; `error`: DNS gave no usable answer. */
  readonly kind: 'mx' | 'route' | 'implicit' | 'null-mx' | 'error';
  /** The configured "host:port" when routed. */
  readonly route: string | null;
  /** Why there is no MX to try (`null-mx`, `error`). */
  readonly reason: string | null;
}

export interface MtaStsMxMatch {
  readonly host: string;
  readonly ok: boolean;
  /** The policy's pattern that matched. */
  readonly pattern: string | null;
  readonly reason: string | null;
}

export type MtaStsReport = (
  | {
      readonly status: 'policy';
      readonly id: string;
      readonly mode: MtaStsMode;
      readonly mx: readonly string[];
      /** Seconds. */
      readonly maxAge: number;
      readonly fetchedAt: string;
      /** Each MX host name against the policy's mx patterns (RFC 8461 §4.1). */
      readonly mxMatches: readonly MtaStsMxMatch[];
    }
  /** No usable TXT record (`invalid`: there is one, but it is broken). */
  | { readonly status: 'none'; readonly reason: string; readonly invalid: boolean }
  /** Discovery failed; `temporary` when it may pass on its own. */
  | { readonly status: 'error'; readonly reason: string; readonly temporary: boolean }
) & {
  /** Whether the relay would apply it: mta_sts.enabled, and not for a statically routed domain. */
  readonly applied: boolean;
  readonly notAppliedBecause: string | null;
};

export interface DomainReport {
  readonly domain: string;
  /** ISO 8601. */
  readonly probedAt: string;
  readonly destination: DestinationReport;
  /** Every address delivery would try, in its order. */
  readonly mxs: readonly MxProbe[];
  readonly mtaSts: MtaStsReport;
  readonly dnssec: DnssecReport;
  /** There is at least one address to deliver to (reachable or not). */
  readonly usable: boolean;
}

const DAY_MS = 24 * 60 * 60 * 1000;

/** "mx1.example [192.0.2.1]:25" — how every progress line and error names an address. */
export function mxLabel(mx: Pick<MxTarget, 'host' | 'ip' | 'port'>): string {
  return `${mx.host} [${mx.ip}]:${mx.port}`;
}

export function floorOf(config: Pick<Config, 'tls'>): Floor {
  return { minVersion: config.tls.min_version, minCipherBits: config.tls.min_cipher_bits };
}

function sessionOptions(config: Config, logger: Logger, dane: DaneRequirement | null = null): SessionOptions {
  return {
    name: config.server.hostname,
    floor: floorOf(config),
    verification: 'none',
    caFile: config.tls.ca_file,
    requireTls: false,
    allowTls: true,
    dane,
    timeouts: {
      connectMs: config.delivery.connect_timeout_ms,
      greetingMs: config.delivery.greeting_timeout_ms,
      socketMs: config.delivery.socket_timeout_ms,
    },
    logger,
  };
}

function certificateOf(facts: TlsFacts, now: number): CertificateReport | null {
  if (facts.peerCertSubject === null && facts.peerCertFingerprint256 === null) return null;
  const notAfter = facts.peerCertNotAfter ?? null;
  return {
    subject: facts.peerCertSubject,
    fingerprint256: facts.peerCertFingerprint256,
    notAfter,
    daysLeft: notAfter === null ? null : Math.floor((Date.parse(notAfter) - now) / DAY_MS),
    authorized: facts.authorized,
    authorizationError: facts.authorized ? null : (facts.authorizationError ?? 'not verified'),
  };
}

function tlsReport(facts: TlsFacts | null, floor: Floor, now: number): Pick<MxProbe, 'tls' | 'floor' | 'certificate'> {
  if (!facts) return { tls: null, floor: null, certificate: null };
  const problem = meetsFloor(facts, floor);
  return { tls: facts, floor: { ok: problem === null, problem }, certificate: certificateOf(facts, now) };
}

/** One line saying what a probed address offered, for progress displays and logs. */
export function describeMxProbe(p: MxProbe): string {
  if (p.error && !p.tls) return p.starttlsOffered ? `STARTTLS offered, ${p.error.reason}` : p.error.reason;
  if (!p.tls) return 'no STARTTLS (plaintext only)';
  const parts = [`STARTTLS, ${p.tls.protocol} ${p.tls.cipher} ${p.tls.bits} bits`];
  if (p.floor && !p.floor.ok) parts.push(`below the floor: ${p.floor.problem}`);
  if (p.certificate) parts.push(p.certificate.authorized ? 'certificate verified' : `certificate not verified (${p.certificate.authorizationError})`);
  else parts.push('no certificate');
  return parts.join(', ');
}

/** Connects to one address, reads what it offers, says QUIT. Never throws for what the peer does. */
export async function probeMx(target: MxTarget, opts: Pick<ProbeOptions, 'config' | 'onProgress' | 'logger' | 'now'> & { readonly dane?: DaneTarget | null }): Promise<MxProbe> {
  const now = opts.now ?? Date.now;
  const floor = floorOf(opts.config);
  const label = mxLabel(target);
  const usable = opts.dane?.kind === 'usable' ? opts.dane : null;
  const base = { host: target.host, ip: target.ip, port: target.port, preference: target.preference, dane: opts.dane && opts.dane.kind !== 'usable' ? opts.dane.facts : null };
  opts.onProgress?.(`${label}: connecting…`);
  const started = now();
  let probe: MxProbe;
  try {
    const session = await openSession(target, sessionOptions(opts.config, opts.logger ?? silentLogger(), usable?.requirement ?? null));
    const { starttlsOffered, tls, daneMatched } = session;
    await session.quit();
    const dane = usable && daneMatched ? daneVerdict(usable, { matched: daneMatched }) : base.dane;
    probe = { ...base, dane, reachable: true, starttlsOffered, ...tlsReport(tls, floor, now()), error: null, durationMs: now() - started };
  } catch (err) {
    if (err instanceof NoAcceptableTls) {
      // Handshake failed or below the floor (verification is `none` here): the host
      // answered and offered STARTTLS; what was negotiated, if anything, is in err.tls.
      probe = {
        ...base,
        reachable: true,
        starttlsOffered: err.starttlsOffered,
        ...tlsReport(err.tls, floor, now()),
        ...(usable ? { dane: daneVerdict(usable, { failed: err.reason }) } : {}),
        error: { stage: err.stage, reason: err.reason },
        durationMs: now() - started,
      };
    } else {
      const e = err instanceof SmtpError ? err : null;
      const stage = e?.stage ?? 'connect';
      probe = {
        ...base,
        // tls-policy here is our own unreadable tls.ca_file: nothing was connected.
        reachable: stage !== 'connect' && stage !== 'tls-policy',
        starttlsOffered: null,
        tls: null,
        floor: null,
        certificate: null,
        // The session's reason repeats "<stage> at <label>: "; every line here is already labelled.
        error: { stage, reason: (e?.reason ?? (err as Error).message).replace(`${stage} at ${label}: `, '') },
        durationMs: now() - started,
      };
      if (usable) probe = { ...probe, dane: daneVerdict(usable, { failed: `the certificate was never checked: ${probe.error!.reason}` }) };
    }
  }
  opts.onProgress?.(`${label}: ${describeMxProbe(probe)}`);
  return probe;
}

let silent: Logger | undefined;
function silentLogger(): Logger {
  silent ??= createLogger('silent');
  return silent;
}

async function destinationOf(domain: string, opts: ProbeOptions, dnssec: DnssecResolver | null): Promise<{ report: DestinationReport; hosts: readonly MxTarget[] }> {
  const { delivery } = opts.config;
  const route = delivery.routes[domain] ?? null;
  try {
    const destination = await resolveDestination(domain, {
      routes: delivery.routes,
      dnsServers: delivery.dns.servers,
      timeoutMs: delivery.dns.timeout_ms,
      port: delivery.port,
      dnssec,
      ...(opts.random ? { random: opts.random } : {}),
    });
    if (destination.kind === 'null-mx') {
      return { report: { kind: 'null-mx', route: null, reason: `${domain} publishes a null MX (RFC 7505): it accepts no mail` }, hosts: [] };
    }
    return { report: { kind: destination.kind, route: destination.kind === 'route' ? route : null, reason: null }, hosts: destination.hosts };
  } catch (err) {
    const reason = err instanceof SmtpError ? `${err.reason} (${err.code} ${err.enhanced})` : (err as Error).message;
    return { report: { kind: 'error', route, reason }, hosts: [] };
  }
}

async function mtaStsOf(domain: string, hosts: readonly MxTarget[], routed: boolean, opts: ProbeOptions): Promise<MtaStsReport> {
  const c = opts.config.mta_sts;
  const notAppliedBecause = !c.enabled ? 'mta_sts.enabled is false' : routed ? `${domain} is statically routed (delivery.routes)` : null;
  const applied = { applied: notAppliedBecause === null, notAppliedBecause };
  let ca: Buffer | undefined;
  try {
    ca = c.ca_file ? readFileSync(c.ca_file) : undefined;
  } catch (err) {
    return { status: 'error', reason: `cannot read mta_sts.ca_file: ${(err as Error).message}`, temporary: false, ...applied };
  }
  const result = await fetchMtaStsPolicy(domain, {
    dnsServers: opts.config.delivery.dns.servers,
    timeoutMs: c.timeout_ms,
    port: c.https_port,
    ...(ca ? { ca } : {}),
    ...(opts.now ? { now: opts.now } : {}),
  });
  if (result.kind === 'none') return { status: 'none', reason: result.reason, invalid: result.invalid, ...applied };
  if (result.kind === 'error') return { status: 'error', reason: result.reason, temporary: result.temporary, ...applied };
  const names = [...new Set(hosts.map((h) => h.host))];
  const mxMatches = names.map((host): MtaStsMxMatch => {
    // Mode none lists no MX and allows every host (pattern null).
    const check = checkMx(result, host);
    return check.ok ? { host, ok: true, pattern: check.pattern, reason: null } : { host, ok: false, pattern: null, reason: check.reason };
  });
  return {
    status: 'policy',
    id: result.id,
    mode: result.mode,
    mx: result.mx,
    maxAge: result.maxAge,
    fetchedAt: new Date(result.fetchedAt).toISOString(),
    mxMatches,
    ...applied,
  };
}

function describeMtaSts(r: MtaStsReport): string {
  if (r.status === 'policy') return `MTA-STS: mode ${r.mode}, id ${r.id}, mx ${r.mx.join(', ') || '(none)'}`;
  return `MTA-STS: ${r.status === 'none' ? 'no policy' : 'lookup failed'}: ${r.reason}`;
}

/** Probes `domain` (see the module comment). Resolves with the report whatever the domain does. */
export async function probeDomain(domain: string, opts: ProbeOptions): Promise<DomainReport> {
  const name = domain.trim().toLowerCase().replace(/\.$/, '');
  const now = opts.now ?? Date.now;
  const probedAt = new Date(now()).toISOString();
  const progress = opts.onProgress ?? (() => undefined);

  const routed = opts.config.delivery.routes[name] !== undefined;
  progress(routed ? `${name}: static route ${opts.config.delivery.routes[name]} (delivery.routes), no MX lookup…` : `${name}: resolving MX…`);
  const { dns } = opts.config.delivery;
  const dnssec = dns.dnssec ? makeDnssecResolver({ servers: dns.servers, timeoutMs: dns.timeout_ms }) : null;
  const { report: destination, hosts } = await destinationOf(name, opts, dnssec);
  if (destination.kind === 'error' || destination.kind === 'null-mx') progress(`${name}: no usable MX: ${destination.reason}`);
  else progress(`${name}: ${hosts.length} address${hosts.length === 1 ? '' : 'es'} to try (${destination.kind})`);

  progress(`${name}: fetching MTA-STS policy…`);
  const [mxs, mtaSts] = await Promise.all([
    Promise.all(
      hosts.map(async (host) => {
        const dane = dnssec ? await daneTargetOf(name, host, dnssec) : null;
        if (dane) progress(`${mxLabel(host)}: ${dane.kind === 'usable' ? `TLSA ${dane.tlsa.join('; ')}` : `DANE ${dane.facts.status}: ${dane.facts.reason}`}`);
        return probeMx(host, { ...opts, onProgress: progress, dane });
      }),
    ),
    mtaStsOf(name, hosts, routed, opts).then((r) => {
      progress(`${name}: ${describeMtaSts(r)}`);
      return r;
    }),
  ]);
  const mxSecure = hosts[0]?.dnssec ? hosts[0].dnssec.mxSecure : null;
  return { domain: name, probedAt, destination, mxs, mtaSts, dnssec: { enabled: dnssec !== null, mxSecure }, usable: hosts.length > 0 };
}
