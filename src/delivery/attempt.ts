// One attempt: deliver one job (one message, one domain, one decision) to the
// domain's hosts in preference order, and say per recipient what happened and
// how it travelled. What a failure means is trouble.ts's call, never decided here.
import type { Config } from '../config/schema.ts';
import type { Logger } from '../log.ts';
import type { Decision } from '../policy/decision.ts';
import { requiresTls } from '../policy/decision.ts';
import type { QueueItem } from '../store/store.ts';
import { SmtpError, parseReply } from '../smtp-error.ts';
import { NoAcceptableTls, openSession, type Session, type SessionOptions } from './connection.ts';
import type { DestinationCache } from './destination-cache.ts';
import type { SessionPool } from './pool.ts';
import { SecureLookupFailed, type MxTarget } from './resolve-mx.ts';
import type { DaneFacts, DeliveryRecord, Method, MtaStsVerdict, MxFacts, Outcome } from './record.ts';
import type { Verification } from '../config/schema.ts';
import { makeDnssecResolver, type DnssecResolver } from '../net/dnssec.ts';
import { wantsDane, withoutDane } from '../policy/verification.ts';
import { formatTlsa } from '../tls/dane.ts';
import { daneTargetOf, daneVerdict, type DaneTarget } from './dane-target.ts';
import type { MtaStsState } from '../domains/mta-sts-cache.ts';
import type { PortalHandoff } from '../portal/handoff.ts';
import { checkMx } from '../domains/mta-sts.ts';
import { afterHostFailure, type HostFailure } from './trouble.ts';
import { afterRequireTlsFailures, requireTlsBounce, requireTlsUnreachable, requireTlsVerdict, RequireTlsUnmet, type RequireTlsHostFailure } from './require-tls.ts';
import { loopReason, withoutSelf, type Self } from './loops.ts';

export interface Job {
  readonly queueId: string;
  readonly domain: string;
  readonly sender: string;
  readonly decision: Decision;
  readonly items: readonly QueueItem[];
  /** The domain's MTA-STS policy when it has one in force (enforce or testing). */
  readonly mtaSts?: MtaStsState | null;
}

/** What one attempt found for one recipient: the DeliveryRecord's evidence, before record.ts adds who/when. */
export interface RecipientResult extends Pick<DeliveryRecord, 'method' | 'mx' | 'starttlsOffered' | 'tls' | 'smtp' | 'mtaSts' | 'dane' | 'encryption' | 'fallback'> {
  readonly item: QueueItem;
  readonly outcome: Outcome;
  /** The portal step took it: the item and notification to commit with its settlement. */
  readonly portal?: PortalHandoff;
  /** Set by attemptJob when no host gave acceptable TLS and the decision has a chain: the reason. */
  readonly needsFallback?: string;
}

export interface AttemptDeps {
  readonly config: Config;
  readonly pool: SessionPool<Session>;
  readonly destinations: DestinationCache;
  readonly logger: Logger;
  /** This relay's own name and listeners: a next hop that is one of them is a loop (loops.ts). */
  readonly self: Self;
}

export async function attemptJob(job: Job, body: Buffer, deps: AttemptDeps): Promise<RecipientResult[]> {
  const { config, logger } = deps;
  const everyone = (r: Omit<RecipientResult, 'item'>) => job.items.map((item) => ({ item, ...r }));
  const fromError = (err: unknown, outcome?: RecipientResult['outcome'], mx: MxFacts | null = null, extra: Partial<RecipientResult> = {}) => {
    const e = asSmtpError(err);
    return everyone({ outcome: outcome ?? (e.temporary ? 'deferred' : 'bounced'), method: 'none', mx, starttlsOffered: null, tls: null, smtp: { code: e.code, enhanced: e.enhanced, response: e.reason }, ...extra });
  };

  if (!job.domain) {
    // Only a bug elsewhere queues one (ingress routes a bare postmaster): held and retried, it bounces at the queue lifetime.
    const who = job.items.map((i) => `<${i.recipient}>`).join(', ');
    return fromError(new SmtpError(451, '4.1.3', 'dns', 'recipient address has no domain', `${who}: recipient address has no domain to route by`));
  }
  // DANE may apply: MX and addresses through the validating resolver, TLSA per host (RFC 7672 §2.2).
  const dnssec = wantsDane(job.decision.verification, job.decision.mode, config.delivery.dns.dnssec) ? dnssecResolverFor(config) : null;
  let destination;
  try {
    destination = await deps.destinations.resolve(job.domain, {
      routes: config.delivery.routes,
      dnsServers: config.delivery.dns.servers,
      timeoutMs: config.delivery.dns.timeout_ms,
      port: config.delivery.port,
      dnssec,
    });
  } catch (err) {
    // A bogus or unanswered DNSSEC lookup of the MX or of every host's address: deferred, and the record says why.
    return fromError(err, undefined, null, err instanceof SecureLookupFailed ? { dane: { status: err.kind, tlsa: [], matched: null, reason: err.reason } } : {});
  }
  if (destination.kind === 'null-mx') {
    return fromError(new SmtpError(556, '5.1.10', 'dns', `${job.domain} accepts no mail (null MX, RFC 7505)`));
  }
  if (!destination.hosts.length) {
    return fromError(new SmtpError(451, '4.4.4', 'dns', `no usable address for the mail hosts of ${job.domain}`));
  }
  // Never to ourselves: the message would come straight back to ingress, hop after hop.
  let hosts = withoutSelf(destination, deps.self);
  if (!hosts.length) {
    return fromError(new SmtpError(554, '5.4.6', 'dns', `mail for ${job.domain} loops back to myself`, loopReason(job.domain, destination, deps.self)));
  }
  // MTA-STS applies to MX delivery, not to a static route the operator set.
  const sts = destination.kind === 'route' ? null : stsInForce(job.mtaSts);
  // REQUIRETLS (RFC 8689, require-tls.ts): nothing to send when no host can be authenticated.
  const requireTls = job.decision.requireTls === true;
  const unauthenticated = requireTls ? requireTlsUnreachable(job.domain, sts, job.decision.verification, destination.kind === 'route') : null;
  if (unauthenticated) return fromError(requireTlsBounce(job.domain, [unauthenticated]));
  // Under REQUIRETLS a testing policy's MX list binds as enforce's does (RFC 8689 §4.2.1).
  if (sts?.mode === 'enforce' || (sts && requireTls)) {
    hosts = hosts.filter((h) => checkMx(sts, h.host).ok);
    if (!hosts.length) {
      const result = `no MX host of ${job.domain} matches its MTA-STS policy (mx: ${sts.mx.join(', ')})`;
      if (requireTls) return fromError(requireTlsBounce(job.domain, [result]), 'bounced', null, { mtaSts: verdict(sts, result) });
      return everyone({ outcome: 'deferred', method: 'none', mx: null, starttlsOffered: null, tls: null, smtp: { code: 451, enhanced: '4.7.5', response: result }, mtaSts: verdict(sts, result) });
    }
  }
  const judge = (r: RecipientResult): RecipientResult => (sts ? { ...r, mtaSts: verdict(sts, stsResult(sts, r)) } : r);

  const failures: HostFailure[] = [];
  const requireTlsFailures: RequireTlsHostFailure[] = [];
  for (const [i, host] of hosts.entries()) {
    const mx: MxFacts = { host: host.host, ip: host.ip, port: host.port, preference: host.preference };
    const isLast = i === hosts.length - 1;
    const dane = await daneFor(job, host, dnssec);
    const usable = dane.target?.kind === 'usable' ? dane.target : null;
    let options: SessionOptions = {
      name: config.server.hostname,
      floor: job.decision.floor,
      // Under an MTA-STS enforce policy the certificate must also pass the policy's check:
      // DANE and MTA-STS both hold (RFC 8461 §2: neither overrides a failing other).
      verification: usable && sts?.mode === 'enforce' ? 'mta-sts' : dane.verification,
      caFile: config.tls.ca_file ?? undefined,
      requireTls: requiresTls(job.decision.mode) || job.decision.tlsExpected || usable !== null,
      allowTls: job.decision.mode !== 'none',
      dane: usable?.requirement ?? null,
      timeouts: {
        connectMs: config.delivery.connect_timeout_ms,
        greetingMs: config.delivery.greeting_timeout_ms,
        socketMs: config.delivery.socket_timeout_ms,
      },
      logger,
    };
    // The trouble policy judges this host by what was asked of it: a usable TLSA set makes TLS expected.
    const trouble = { ...job.decision, verification: dane.verification, tlsExpected: job.decision.tlsExpected || usable !== null };
    // One pass per way of talking to this host: with TLS, then (a sealed copy only) once more without.
    for (;;) {
      const current = options;
      try {
        if (dane.refusal) throw dane.refusal;
        const results = await deps.pool.with(
          sessionKey(host, current),
          () => openSession(host, current),
          async (session) => {
            if (requireTls) await requireTlsGate(session, mx, sts);
            const sent = await transact(job, body, session, mx, current.requireTls, requireTls);
            const facts = usable && session.daneMatched ? daneVerdict(usable, { matched: session.daneMatched }) : dane.facts;
            return sent.map((r) => ({ ...r, dane: facts }));
          },
        );
        return results.map(judge);
      } catch (err) {
        if (requireTls) {
          // RFC 8689 §4.2.1: a host without what REQUIRETLS needs → the next MX; none left → 5.7.30 (require-tls.ts).
          // dane-only without DANE cannot authenticate the host either; a bogus TLSA answer is for later (defer).
          const unmet = err instanceof RequireTlsUnmet || err instanceof NoAcceptableTls || (err instanceof DaneRefusal && err.failure.kind === 'no-acceptable-tls');
          requireTlsFailures.push({ kind: unmet ? 'requiretls' : 'unreachable', reason: describe(err) });
          logger.warn(
            { event: 'delivery.connection_failed', queueId: job.queueId, domain: job.domain, mx, requireTls: true, err: describe(err) },
            `${mx.host}[${mx.ip}]:${mx.port}: ${describe(err)} → ${isLast ? 'end of hosts (REQUIRETLS)' : 'next-host (REQUIRETLS)'}`,
          );
          if (!isLast) break;
          const daneSeen = usable
            ? daneVerdict(usable, err instanceof RequireTlsUnmet && err.daneMatched ? { matched: err.daneMatched } : { failed: `REQUIRETLS: ${describe(err)}` })
            : dane.facts;
          const seen = { ...(err instanceof RequireTlsUnmet || err instanceof NoAcceptableTls ? { starttlsOffered: err.starttlsOffered, tls: err.tls } : {}), dane: daneSeen };
          if (afterRequireTlsFailures(requireTlsFailures) === 'bounce') return fromError(requireTlsBounce(job.domain, requireTlsFailures.map((f) => f.reason)), 'bounced', mx, seen).map(judge);
          return fromError(err, 'deferred', mx, seen).map(judge);
        }
        const failure: HostFailure =
          err instanceof NoAcceptableTls ? { kind: 'no-acceptable-tls', tls: err.kind } : err instanceof DaneRefusal ? err.failure : { kind: 'connect-failed' };
        failures.push(failure);
        // A plain retry (no STARTTLS tried) can only fail as connect-failed, never ask for another.
        const action = afterHostFailure(trouble, failure, isLast, failures);
        logger.warn(
          { event: 'delivery.connection_failed', queueId: job.queueId, domain: job.domain, mx, failure, action, err: describe(err) },
          `${mx.host}[${mx.ip}]:${mx.port}: ${describe(err)} → ${action}`,
        );
        if (action === 'retry-plain') {
          options = { ...current, allowTls: false, requireTls: false };
          continue;
        }
        if (action === 'next-host') break;
        const tlsSeen = err instanceof NoAcceptableTls ? { starttlsOffered: err.starttlsOffered, tls: err.tls } : {};
        const e = asSmtpError(err);
        const daneSeen = { dane: usable ? daneVerdict(usable, { failed: err instanceof NoAcceptableTls ? `TLS is mandatory with a usable TLSA set (RFC 7672 §2.2): ${e.reason}` : `the certificate was never checked: ${e.reason}` }) : dane.facts };
        const outcome = action === 'drop' ? 'dropped' : action === 'bounce' ? 'bounced' : 'deferred';
        const fallback = action === 'fallback' ? { needsFallback: e.reason } : {};
        const reason =
          action === 'drop'
            ? `dropped by mode tls-exclusive: ${e.reason}`
            : err instanceof NoAcceptableTls && job.decision.tlsExpected && !requiresTls(job.decision.mode)
              ? `possible-downgrade: ${job.domain} is known to offer TLS, but ${e.reason}`
              : e.reason;
        return fromError(new SmtpError(e.code, e.enhanced, e.stage, e.message, reason), outcome, mx, { ...tlsSeen, ...fallback, ...daneSeen }).map(judge);
      }
    }
  }
  // Unreachable: the last host always ends the loop with a result.
  throw new Error('no host produced a result');
}

/** A host refused before connecting for a DANE reason: a bogus TLSA answer, or dane-only where DANE does not apply. */
class DaneRefusal extends SmtpError {
  readonly failure: HostFailure;
  constructor(error: SmtpError, failure: HostFailure) {
    super(error.code, error.enhanced, error.stage, error.message, error.reason);
    this.name = 'DaneRefusal';
    this.failure = failure;
  }
}

/** What DANE asks of one host: the TLSA target, the verification to use, and a refusal before connecting. */
interface HostDane {
  readonly target: DaneTarget | null;
  /** The record's DANE facts unless the session decides them (a usable set: matched or mismatch). */
  readonly facts: DaneFacts | null;
  readonly verification: Verification;
  readonly refusal: DaneRefusal | null;
}

async function daneFor(job: Job, host: MxTarget, dnssec: DnssecResolver | null): Promise<HostDane> {
  const v = job.decision.verification;
  // Mode none sends in plaintext: no certificate is judged, whatever the verification says.
  if (job.decision.mode === 'none') return { target: null, facts: null, verification: 'none', refusal: null };
  const fallback = withoutDane(v);
  if (!dnssec) {
    if (fallback !== null) return { target: null, facts: null, verification: fallback, refusal: null };
    // dane-only decided before delivery.dns.dnssec was turned off (config reload): nothing can satisfy it.
    const facts: DaneFacts = { status: 'insecure', tlsa: [], matched: null, reason: 'delivery.dns.dnssec is off: no validated answers' };
    return { target: null, facts, verification: v, refusal: daneOnly(host, facts) };
  }
  const target = await daneTargetOf(job.domain, host, dnssec);
  if (target.kind === 'usable') return { target, facts: null, verification: 'dane', refusal: null };
  // RFC 7672 §2.2: a bogus or indeterminate TLSA answer means this host is not used (next host, then defer).
  if (target.kind === 'failed') return { target, facts: target.facts, verification: v, refusal: new DaneRefusal(target.error, { kind: 'connect-failed' }) };
  if (fallback === null) return { target, facts: target.facts, verification: v, refusal: daneOnly(host, target.facts) };
  return { target, facts: target.facts, verification: fallback, refusal: null };
}

/** dane-only where DANE does not apply: like a certificate that failed its check (forced falls back, tls-exclusive drops). */
function daneOnly(host: MxTarget, facts: DaneFacts): DaneRefusal {
  const error = new SmtpError(451, '4.7.5', 'tls-policy', `No DANE for ${host.host}`, `verification dane-only: ${facts.reason}`);
  return new DaneRefusal(error, { kind: 'no-acceptable-tls', tls: 'verify-failed' });
}

/** One DNSSEC resolver per loaded config (a reload brings new servers). */
const dnssecResolvers = new WeakMap<Config, DnssecResolver>();
function dnssecResolverFor(config: Config): DnssecResolver {
  let resolver = dnssecResolvers.get(config);
  if (!resolver) {
    resolver = makeDnssecResolver({ servers: config.delivery.dns.servers, timeoutMs: config.delivery.dns.timeout_ms });
    dnssecResolvers.set(config, resolver);
  }
  return resolver;
}

function stsInForce(state: MtaStsState | null | undefined): (MtaStsState & { mode: 'enforce' | 'testing' }) | null {
  return state && (state.mode === 'enforce' || state.mode === 'testing') ? (state as MtaStsState & { mode: 'enforce' | 'testing' }) : null;
}

function verdict(sts: MtaStsState & { mode: 'enforce' | 'testing' }, result: string): MtaStsVerdict {
  return { mode: sts.mode, id: sts.id ?? null, result };
}

/** How one recipient's attempt fared against the policy: the MX, TLS, and the certificate (RFC 8461 §4). */
function stsResult(sts: MtaStsState, r: Pick<RecipientResult, 'mx' | 'tls' | 'starttlsOffered' | 'smtp'>): string {
  if (!r.mx) return r.smtp.response;
  const mx = checkMx(sts, r.mx.host);
  const failure = !mx.ok
    ? mx.reason
    : !r.tls
      ? `no TLS with ${r.mx.host}${r.starttlsOffered === false ? ' (STARTTLS not offered)' : ''}`
      : !r.tls.authorized
        ? `certificate of ${r.mx.host} not valid (${r.tls.authorizationError ?? 'unknown'})`
        : null;
  if (!failure) return 'pass';
  return sts.mode === 'testing' ? `would fail: ${failure}` : failure;
}

/**
 * Sessions are shared only between attempts with the same security profile: every
 * option that decided what TLS the session had to have is part of the key, so a
 * session opened for a plaintext-tolerant attempt never carries one that needs TLS.
 */
function sessionKey(host: MxTarget, o: SessionOptions): string {
  return [host.ip, host.port, host.host, o.requireTls, o.allowTls, o.verification, o.floor.minVersion, o.floor.minCipherBits, o.caFile ?? '', o.dane?.usable.map(formatTlsa).join(',') ?? ''].join('|');
}

/**
 * REQUIRETLS (RFC 8689 §4.2.1) before MAIL FROM: the session's TLS verified by MTA-STS or
 * DANE, and REQUIRETLS advertised after STARTTLS; else QUIT and RequireTlsUnmet (next MX).
 */
async function requireTlsGate(session: Session, mx: MxFacts, sts: (MtaStsState & { mode: 'enforce' | 'testing' }) | null): Promise<void> {
  const seen = { mx, tls: session.tls, starttlsOffered: session.starttlsOffered, smtp: { code: null, enhanced: null, response: 'not sent yet' } };
  const judged = requireTlsVerdict({
    host: mx.host,
    tls: session.tls,
    requiretlsOffered: session.requiretlsOffered === true,
    mtaSts: sts ? verdict(sts, stsResult(sts, seen)) : null,
    dane: session.daneMatched ? { status: 'matched' } : null,
  });
  if (judged.ok) return;
  await session.quit();
  throw new RequireTlsUnmet({ mx, starttlsOffered: session.starttlsOffered, tls: session.tls, daneMatched: session.daneMatched ?? null, reason: judged.reason });
}

/** One transaction on an open session; a failure mid-way defers or bounces everyone in it. */
async function transact(job: Job, body: Buffer, session: Session, mx: MxFacts, requireTls: boolean, requireTlsExtension = false): Promise<RecipientResult[]> {
  const method: Method = session.tls ? 'tls' : 'plaintext';
  const seen = { mx, starttlsOffered: session.starttlsOffered, tls: session.tls };
  if (requireTls && !session.tls) {
    // Belt and braces behind sessionKey: whatever happened, this never goes out in plaintext.
    return job.items.map((item) => ({ item, outcome: 'deferred', method: 'none', ...seen, smtp: { code: 451, enhanced: '4.7.4', response: 'refused to send: the session is not encrypted and this recipient requires TLS' } }));
  }
  try {
    // REQUIRETLS is passed on in MAIL FROM (RFC 8689 §4.2.1), so the next hop keeps the demand.
    const sent = await session.send({ from: job.sender, to: job.items.map((i) => i.recipient), ...(requireTlsExtension ? { requireTls: true } : {}) }, body);
    return job.items.map((item) => {
      const r = sent.perRecipient.get(item.recipient);
      if (!r) return { item, outcome: 'deferred', method: 'none', ...seen, smtp: { code: null, enhanced: null, response: 'no reply for this recipient' } };
      const outcome = r.accepted ? 'delivered' : r.code !== null && r.code >= 500 ? 'bounced' : 'deferred';
      return { item, outcome, method: r.accepted ? method : 'none', ...seen, smtp: { code: r.code, enhanced: r.enhanced, response: r.response } };
    });
  } catch (err) {
    // The peer may have the message (e.g. lost connection after the final dot):
    // retrying risks a duplicate, which DESIGN accepts; losing it does not.
    const e = asSmtpError(err);
    return job.items.map((item) => ({ item, outcome: e.temporary ? 'deferred' : 'bounced', method: 'none', ...seen, smtp: { code: e.code, enhanced: e.enhanced, response: e.reason } }));
  }
}

function asSmtpError(err: unknown): SmtpError {
  if (err instanceof SmtpError) return err;
  const e = err as { responseCode?: number; response?: string; message?: string; code?: string };
  if (e?.responseCode && e.responseCode >= 400 && e.responseCode < 600) {
    const parsed = parseReply(e.response ?? '');
    const cls = String(e.responseCode)[0];
    const enhanced = parsed.enhanced && parsed.enhanced[0] === cls ? parsed.enhanced : `${cls}.0.0`;
    return new SmtpError(e.responseCode, enhanced, 'connect', e.response ?? e.message ?? 'error', e.response ?? e.message ?? 'error');
  }
  return new SmtpError(451, '4.4.1', 'connect', 'connection failed', describe(err));
}

function describe(err: unknown): string {
  if (err instanceof SmtpError) return err.reason;
  return (err as Error)?.message ?? String(err);
}
