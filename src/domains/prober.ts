// Periodic STARTTLS probing of the domains the relay cares about (those named in
// the active policy and those it delivered to recently), like SecureLine's domain
// monitoring: between deliveries, domain knowledge stays fresh, so an operator
// (`sealrelay domains`) sees that a partner's MX stopped offering STARTTLS before a
// message has to find out.
//
// Policy:
// - one run every `intervalMs` (domains.probe_interval_seconds), the next one armed
//   only when the previous finished, so runs never overlap; the first after
//   `firstDelayMs`, so a relay that restarts often still probes;
// - per domain, the addresses delivery would try (probe.ts: same MX resolution, same
//   floor), in order, until one answers EHLO — the host a delivery would have used;
//   nothing is sent (EHLO, STARTTLS, QUIT);
// - what that host showed is handed to `record` (Store#recordProbe in the relay):
//   whether it advertised STARTTLS and whether a handshake meeting the floor
//   completed. A domain where no address answers is logged, not recorded: "nobody
//   answered" says nothing about STARTTLS;
// - a successful handshake from a probe never makes a domain TLS-known — only a
//   delivery does (Store#finish). TLS-known is a commitment: from then on the relay
//   defers rather than send in plaintext, possibly for good. It must rest on evidence
//   an auditor can see — a DeliveryRecord of a message that really travelled over TLS
//   — not on a background handshake with no record behind it. A probe also sees less
//   than a delivery: it checks the default floor only (a rule may demand more), and it
//   probes domains the relay may never send to (every domain named in a rule), which
//   would then refuse plaintext on the strength of one unattended observation.
// - a few domains at a time (PROBE_CONCURRENCY), each bounded by the delivery
//   timeouts; stop() ends scheduling at once and no observation is recorded after it.
import { readDomainsFile } from '../policy/rules.ts';
import type { Config } from '../config/schema.ts';
import { resolveDestination, type MxTarget } from '../delivery/resolve-mx.ts';
import type { Logger } from '../log.ts';
import { SmtpError } from '../smtp-error.ts';
import type { DomainKnowledge } from '../store/store.ts';
import { mxLabel, probeMx, type MxProbe } from './probe.ts';

/** What one probe saw of a domain's MX. Store#recordProbe keeps it. */
export interface ProbeObservation {
  /** When the probe ran, ms since the epoch. */
  readonly at: number;
  /** The host advertised STARTTLS in its EHLO reply. */
  readonly starttlsOffered: boolean;
  /** A TLS handshake meeting the floor completed (says nothing about the certificate). */
  readonly tlsOk: boolean;
}

/** Something that can arm one timer; tests pass a fake one. */
export interface ProberTimers {
  set(run: () => void, ms: number): unknown;
  clear(handle: unknown): void;
}

export interface ProberOptions {
  readonly config: Config;
  readonly logger: Logger;
  /** The domains of one run, asked afresh each time (see domainsToProbe). */
  readonly domains: () => readonly string[] | Promise<readonly string[]>;
  /** Keeps one observation: the relay passes Store#recordProbe. Never called after stop(). */
  readonly record: (domain: string, observation: ProbeObservation) => Promise<void>;
  /** Between the end of one run and the start of the next, in ms (domains.probe_interval_seconds × 1000). */
  readonly intervalMs: number;
  /** Before the first run, in ms; default the smaller of intervalMs and FIRST_RUN_DELAY_MS. */
  readonly firstDelayMs?: number;
  /** Domains probed at once; default PROBE_CONCURRENCY. */
  readonly concurrency?: number;
  /** Clock (ms since the epoch) for observations; tests pin it. */
  readonly now?: () => number;
  readonly timers?: ProberTimers;
}

export interface Prober {
  /** Probes every domain now (or joins the run under way); resolves when it is done. */
  runNow(): Promise<void>;
  /** Stops scheduling at once; resolves when a run under way has ended (its sessions are bounded by the delivery timeouts). */
  stop(): Promise<void>;
}

/** First run this long after start, unless the interval is shorter: startup stays quiet, restarts still probe. */
export const FIRST_RUN_DELAY_MS = 5 * 60_000;
/** Domains probed at once: a handful of SMTP sessions, nothing an MX would notice. */
export const PROBE_CONCURRENCY = 4;
const DAY_MS = 24 * 60 * 60 * 1000;

const realTimers: ProberTimers = {
  set: (run, ms) => {
    const timer = setTimeout(run, ms);
    // A pending probe never keeps the process alive.
    timer.unref();
    return timer;
  },
  clear: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

/**
 * The domains worth probing: every domain named exactly in policies.domains and in
 * rules' recipient_domain (wildcards name no host to probe), and every domain with a
 * delivery attempt in the last `recentDays`. Lower case, sorted, without duplicates.
 * (Domains from rules' recipient_domains_file are not included: policy/rules.ts does
 * not export its file reader.)
 */
export function domainsToProbe(
  config: Pick<Config, 'policies'>,
  known: readonly DomainKnowledge[],
  opts: { readonly now: number; readonly recentDays: number },
): string[] {
  const names = new Set<string>();
  const add = (name: string) => {
    const d = name.trim().toLowerCase().replace(/\.$/, '');
    if (d && !d.includes('*')) names.add(d);
  };
  for (const domain of Object.keys(config.policies.domains)) add(domain);
  for (const rule of config.policies.rules) {
    for (const domain of rule.match.recipient_domain ?? []) add(domain);
    if (rule.match.recipient_domains_file) {
      try {
        for (const domain of readDomainsFile(rule.match.recipient_domains_file)) add(domain);
      } catch {
        // An unreadable list already failed policy loading loudly; probing just skips it.
      }
    }
  }
  const since = opts.now - opts.recentDays * DAY_MS;
  // attempts 0: a row only a probe wrote (Store#recordProbe); it must not keep itself on the list.
  for (const k of known) if (k.attempts > 0 && k.lastAttemptAt >= since) add(k.domain);
  return [...names].sort();
}

type DomainOutcome = { readonly kind: 'observed'; readonly probe: MxProbe; readonly observation: ProbeObservation } | { readonly kind: 'unanswered'; readonly reason: string };

/** The first address (in delivery order) that answers EHLO, and what it showed. */
async function probeStarttls(domain: string, config: Config, logger: Logger, now: () => number): Promise<DomainOutcome> {
  const { delivery } = config;
  let hosts: readonly MxTarget[];
  try {
    const destination = await resolveDestination(domain, { routes: delivery.routes, dnsServers: delivery.dns.servers, timeoutMs: delivery.dns.timeout_ms, port: delivery.port });
    if (destination.kind === 'null-mx') return { kind: 'unanswered', reason: 'null MX (RFC 7505)' };
    hosts = destination.hosts;
  } catch (err) {
    return { kind: 'unanswered', reason: err instanceof SmtpError ? err.reason : (err as Error).message };
  }
  const failures: string[] = [];
  for (const host of hosts) {
    const probe = await probeMx(host, { config, logger, now });
    // starttlsOffered is known once the host answered EHLO: that is the host a delivery would use.
    if (probe.starttlsOffered !== null) {
      return { kind: 'observed', probe, observation: { at: now(), starttlsOffered: probe.starttlsOffered, tlsOk: probe.tls !== null && probe.floor?.ok === true } };
    }
    failures.push(`${mxLabel(host)}: ${probe.error?.reason ?? 'no answer'}`);
  }
  return { kind: 'unanswered', reason: failures.join('; ') || 'no address' };
}

export function startProber(opts: ProberOptions): Prober {
  const { config, logger, intervalMs } = opts;
  const now = opts.now ?? Date.now;
  const timers = opts.timers ?? realTimers;
  const concurrency = Math.max(1, opts.concurrency ?? PROBE_CONCURRENCY);
  const log = logger.child({ component: 'prober' });
  let stopped = false;
  let timer: unknown = null;
  let running: Promise<void> | null = null;

  const arm = (ms: number) => {
    if (stopped) return;
    timer = timers.set(() => {
      timer = null;
      void runNow();
    }, ms);
  };

  async function probeOne(domain: string): Promise<'recorded' | 'unanswered' | 'failed' | 'skipped'> {
    const outcome = await probeStarttls(domain, config, log, now);
    if (outcome.kind === 'unanswered') {
      log.warn({ event: 'domains.probe', domain, result: 'unanswered', reason: outcome.reason }, `probe of ${domain}: no MX answered`);
      return 'unanswered';
    }
    const { probe, observation } = outcome;
    // The store may be closing: nothing is recorded after stop().
    if (stopped) return 'skipped';
    try {
      await opts.record(domain, observation);
    } catch (err) {
      log.error({ event: 'domains.probe', domain, result: 'record-failed', err: (err as Error).message }, `probe of ${domain}: could not record the observation`);
      return 'failed';
    }
    log.info(
      { event: 'domains.probe', domain, result: 'recorded', mx: { host: probe.host, ip: probe.ip, port: probe.port }, starttlsOffered: observation.starttlsOffered, tlsOk: observation.tlsOk, protocol: probe.tls?.protocol ?? null },
      `probe of ${domain}: ${observation.starttlsOffered ? `STARTTLS offered, TLS ${observation.tlsOk ? 'ok' : 'failed'}` : 'no STARTTLS'}`,
    );
    return 'recorded';
  }

  async function run(): Promise<void> {
    const started = now();
    let domains: string[];
    try {
      domains = [...new Set(await opts.domains())];
    } catch (err) {
      log.error({ event: 'domains.probe', result: 'no-domains', err: (err as Error).message }, 'probe run: could not list the domains');
      return;
    }
    const counts = { recorded: 0, unanswered: 0, failed: 0, skipped: 0 };
    let next = 0;
    const worker = async () => {
      while (!stopped && next < domains.length) {
        const domain = domains[next++]!;
        try {
          counts[await probeOne(domain)]++;
        } catch (err) {
          counts.failed++;
          log.error({ event: 'domains.probe', domain, result: 'error', err: (err as Error).message }, `probe of ${domain} failed`);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, domains.length) }, worker));
    log.info({ event: 'domains.probe', result: 'run-finished', domains: domains.length, ...counts, durationMs: now() - started }, `probed ${domains.length} domains`);
  }

  function runNow(): Promise<void> {
    if (running) return running;
    if (stopped) return Promise.resolve();
    if (timer !== null) {
      timers.clear(timer);
      timer = null;
    }
    running = run().finally(() => {
      running = null;
      arm(intervalMs);
    });
    return running;
  }

  arm(opts.firstDelayMs ?? Math.min(intervalMs, FIRST_RUN_DELAY_MS));
  return {
    runNow,
    stop() {
      stopped = true;
      if (timer !== null) timers.clear(timer);
      timer = null;
      return running ?? Promise.resolve();
    },
  };
}
