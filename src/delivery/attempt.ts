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
import type { MxTarget } from './resolve-mx.ts';
import type { DeliveryRecord, Method, MtaStsVerdict, MxFacts, Outcome } from './record.ts';
import type { MtaStsState } from '../domains/mta-sts-cache.ts';
import type { PortalHandoff } from '../portal/handoff.ts';
import { checkMx } from '../domains/mta-sts.ts';
import { afterHostFailure, type HostFailure } from './trouble.ts';
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
export interface RecipientResult extends Pick<DeliveryRecord, 'method' | 'mx' | 'starttlsOffered' | 'tls' | 'smtp' | 'mtaSts' | 'encryption' | 'fallback'> {
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
  let destination;
  try {
    destination = await deps.destinations.resolve(job.domain, {
      routes: config.delivery.routes,
      dnsServers: config.delivery.dns.servers,
      timeoutMs: config.delivery.dns.timeout_ms,
      port: config.delivery.port,
    });
  } catch (err) {
    return fromError(err);
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
  if (sts?.mode === 'enforce') {
    hosts = hosts.filter((h) => checkMx(sts, h.host).ok);
    if (!hosts.length) {
      const result = `no MX host of ${job.domain} matches its MTA-STS policy (mx: ${sts.mx.join(', ')})`;
      return everyone({ outcome: 'deferred', method: 'none', mx: null, starttlsOffered: null, tls: null, smtp: { code: 451, enhanced: '4.7.5', response: result }, mtaSts: verdict(sts, result) });
    }
  }
  const judge = (r: RecipientResult): RecipientResult => (sts ? { ...r, mtaSts: verdict(sts, stsResult(sts, r)) } : r);

  const failures: HostFailure[] = [];
  for (const [i, host] of hosts.entries()) {
    const mx: MxFacts = { host: host.host, ip: host.ip, port: host.port, preference: host.preference };
    const isLast = i === hosts.length - 1;
    let options: SessionOptions = {
      name: config.server.hostname,
      floor: job.decision.floor,
      verification: job.decision.verification,
      caFile: config.tls.ca_file ?? undefined,
      requireTls: requiresTls(job.decision.mode) || job.decision.tlsExpected,
      allowTls: job.decision.mode !== 'none',
      timeouts: {
        connectMs: config.delivery.connect_timeout_ms,
        greetingMs: config.delivery.greeting_timeout_ms,
        socketMs: config.delivery.socket_timeout_ms,
      },
      logger,
    };
    // One pass per way of talking to this host: with TLS, then (a sealed copy only) once more without.
    for (;;) {
      const current = options;
      try {
        const results = await deps.pool.with(
          sessionKey(host, current),
          () => openSession(host, current),
          (session) => transact(job, body, session, mx, current.requireTls),
        );
        return results.map(judge);
      } catch (err) {
        const failure: HostFailure =
          err instanceof NoAcceptableTls ? { kind: 'no-acceptable-tls', tls: err.kind } : { kind: 'connect-failed' };
        failures.push(failure);
        // A plain retry (no STARTTLS tried) can only fail as connect-failed, never ask for another.
        const action = afterHostFailure(job.decision, failure, isLast, failures);
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
        const outcome = action === 'drop' ? 'dropped' : action === 'bounce' ? 'bounced' : 'deferred';
        const fallback = action === 'fallback' ? { needsFallback: e.reason } : {};
        const reason =
          action === 'drop'
            ? `dropped by mode tls-exclusive: ${e.reason}`
            : err instanceof NoAcceptableTls && job.decision.tlsExpected && !requiresTls(job.decision.mode)
              ? `possible-downgrade: ${job.domain} is known to offer TLS, but ${e.reason}`
              : e.reason;
        return fromError(new SmtpError(e.code, e.enhanced, e.stage, e.message, reason), outcome, mx, { ...tlsSeen, ...fallback }).map(judge);
      }
    }
  }
  // Unreachable: the last host always ends the loop with a result.
  throw new Error('no host produced a result');
}

function stsInForce(state: MtaStsState | null | undefined): (MtaStsState & { mode: 'enforce' | 'testing' }) | null {
  return state && (state.mode === 'enforce' || state.mode === 'testing') ? (state as MtaStsState & { mode: 'enforce' | 'testing' }) : null;
}

function verdict(sts: MtaStsState & { mode: 'enforce' | 'testing' }, result: string): MtaStsVerdict {
  return { mode: sts.mode, id: sts.id ?? null, result };
}

/** How one recipient's attempt fared against the policy: the MX, TLS, and the certificate (RFC 8461 §4). */
function stsResult(sts: MtaStsState, r: RecipientResult): string {
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
  return [host.ip, host.port, host.host, o.requireTls, o.allowTls, o.verification, o.floor.minVersion, o.floor.minCipherBits, o.caFile ?? ''].join('|');
}

/** One transaction on an open session; a failure mid-way defers or bounces everyone in it. */
async function transact(job: Job, body: Buffer, session: Session, mx: MxFacts, requireTls: boolean): Promise<RecipientResult[]> {
  const method: Method = session.tls ? 'tls' : 'plaintext';
  const seen = { mx, starttlsOffered: session.starttlsOffered, tls: session.tls };
  if (requireTls && !session.tls) {
    // Belt and braces behind sessionKey: whatever happened, this never goes out in plaintext.
    return job.items.map((item) => ({ item, outcome: 'deferred', method: 'none', ...seen, smtp: { code: 451, enhanced: '4.7.4', response: 'refused to send: the session is not encrypted and this recipient requires TLS' } }));
  }
  try {
    const sent = await session.send({ from: job.sender, to: job.items.map((i) => i.recipient) }, body);
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
