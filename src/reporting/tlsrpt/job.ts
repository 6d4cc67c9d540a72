// The daily TLS reports (RFC 8460) of a running relay: make yesterday's reports once
// the UTC day has ended, then send each to its destinations, retrying failures.
//
// Policy:
// - a day's reports are made once (the store marks the day done in the transaction
//   that saves them), at 00:00 UTC plus a random share of tlsrpt.jitter_minutes (§5.1
//   asks reporters to spread their submissions); a relay that was down then makes them
//   when it starts. Only the day just ended is made: older days are not caught up;
// - a report is made for each recipient domain with an attempt that day whose
//   `_smtp._tls` TXT record is valid (discovery.ts) and that had a TLS session to
//   report; domains reached through a static route (delivery.routes) are left out —
//   the sessions were with the operator's next hop, not with the domain's MX;
// - each destination is sent to on its own: `mailto:` queues a message in the relay's
//   queue (done for this job once queued: delivery retries it like any mail), `https:`
//   POSTs and is retried with exponential backoff until tlsrpt.retry_hours after the
//   report was made, then given up (the status shows it).
// The work runs in the relay's main thread on a timer of its own, never on the
// commit path: one store read per domain of the day, once a day.
import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import type { Config } from '../../config/schema.ts';
import type { MtaStsPolicy } from '../../domains/mta-sts.ts';
import type { Logger } from '../../log.ts';
import type { NewMessage, Store } from '../../store/store.ts';
import { discoverTlsRpt, type TlsRptDiscovery } from './discovery.ts';
import { postReport, type PostResult } from './https.ts';
import { buildReportMessage } from './message.ts';
import { dayOf, dayRange, previousDay, reportFileName, reportFromSessions, type Reporter, type TlsReport } from './report.ts';
import { addSessions, type Session } from './sessions.ts';
import type { DueTlsReport, NewTlsReport, TlsReportSettlement } from './state.ts';

/** How often the job looks for a day to report and for due destinations, in ms. */
const TICK_MS = 60_000;
/** The records of a domain's day are read this much time at a time. */
const READ_WINDOW_MS = 3_600_000;
/** Destinations tried per tick. */
const SEND_BATCH = 20;
/** Backoff of a failing https: destination: the first wait, doubling up to the cap. */
const RETRY_FIRST_MS = 60_000;
const RETRY_MAX_MS = 60 * 60_000;

/** Who reports, with config tlsrpt's defaults filled in. */
export function reporterOf(config: Config): Reporter & { from: string } {
  const t = config.tlsrpt;
  const submitter = (t.submitter ?? config.server.hostname).toLowerCase();
  return {
    submitter,
    organizationName: t.organization_name ?? submitter,
    contactInfo: t.contact_info ?? `postmaster@${submitter}`,
    from: t.from ?? `noreply-tlsrpt@${submitter}`,
  };
}

export interface TlsRptDeps {
  readonly store: Store;
  readonly config: Config;
  readonly logger: Logger;
  /** Queues a relay-made message and wakes delivery (relay.ts). */
  readonly queueMail: (message: NewMessage) => Promise<void>;
  /** Tests replace discovery or the clock. */
  readonly discover?: (domain: string) => Promise<TlsRptDiscovery>;
  readonly now?: () => number;
  /** Tests shorten the backoff of failing https: destinations. */
  readonly retryFirstMs?: number;
  /** [0, 1) like Math.random: the share of the jitter and of the backoff (tests pin it). */
  readonly random?: () => number;
  /** Aborted when the relay stops: a run ends between two domains or sends (an unfinished day is made again at the next start). */
  readonly signal?: AbortSignal;
}

const discoverWith = (deps: TlsRptDeps) =>
  deps.discover ?? ((domain: string) => discoverTlsRpt(domain, { dnsServers: deps.config.delivery.dns.servers, timeoutMs: deps.config.delivery.dns.timeout_ms }));

async function stsPolicyOf(store: Store, domain: string): Promise<MtaStsPolicy | null> {
  const json = await store.getMtaStsPolicy(domain);
  return json ? (JSON.parse(json) as MtaStsPolicy) : null;
}

/**
 * The report of one domain and day from the store's records (what `tlsrpt preview`
 * shows), or null when there was no session. The records are read an hour at a time
 * and only their sessions kept: a busy domain's day never sits in memory whole, and
 * the store thread serves other calls between the reads.
 */
export async function reportFor(store: Store, config: Config, domain: string, day: string): Promise<TlsReport | null> {
  const { start, end } = dayRange(day);
  const d = domain.trim().toLowerCase().replace(/\.$/, '');
  const sessions = new Map<string, Session>();
  for (let from = start; from < end; from += READ_WINDOW_MS) {
    addSessions(sessions, await store.queryRecords({ domain: d, since: from, until: Math.min(from + READ_WINDOW_MS, end) }));
  }
  return reportFromSessions({ domain: d, day, sessions: [...sessions.values()], reporter: reporterOf(config), sts: await stsPolicyOf(store, d) });
}

export interface DayResult {
  readonly day: string;
  readonly domains: number;
  readonly reports: number;
}

/** Makes and saves the reports of `day` (a no-op when that day is done). */
export async function makeDayReports(deps: TlsRptDeps, day: string): Promise<DayResult> {
  const { store, config, logger } = deps;
  const now = (deps.now ?? Date.now)();
  if (await store.tlsReportDayDone(day)) return { day, domains: 0, reports: 0 };
  const { start, end } = dayRange(day);
  const discover = discoverWith(deps);
  const domains = (await store.recordDomains(start, end)).filter((d) => !config.delivery.routes[d]);
  const reports: NewTlsReport[] = [];
  for (const domain of domains) {
    if (deps.signal?.aborted) return { day, domains: 0, reports: 0 };
    const found = await discover(domain);
    if (found.kind !== 'record') {
      if (found.kind === 'error') logger.warn({ event: 'tlsrpt.discovery_failed', domain, reason: found.reason }, `TLS-RPT ${domain}: ${found.reason}; no report for ${day}`);
      continue;
    }
    if (found.ignored.length) logger.info({ event: 'tlsrpt.uri_ignored', domain, ignored: found.ignored }, `TLS-RPT ${domain}: ignored rua URI(s) we do not send to`);
    const report = await reportFor(store, config, domain, day);
    if (!report) continue;
    reports.push({ reportId: report['report-id'], domain, day, json: JSON.stringify(report), destinations: found.rua });
  }
  await store.saveTlsReports(day, reports, now, now + config.tlsrpt.retry_hours * 3600_000);
  logger.info({ event: 'tlsrpt.made', day, domains: domains.length, reports: reports.length }, `TLS reports for ${day}: ${reports.length} of ${domains.length} domain(s)`);
  return { day, domains: domains.length, reports: reports.length };
}

/** Sends one destination of one report. */
async function sendOne(deps: TlsRptDeps, due: DueTlsReport): Promise<PostResult> {
  const reporter = reporterOf(deps.config);
  const gzipped = gzipSync(Buffer.from(due.json, 'utf8'));
  const fileName = reportFileName(reporter.submitter, due.domain, due.day);
  if (due.destination.startsWith('mailto:')) {
    const message = await buildReportMessage({
      from: reporter.from,
      to: due.destination.slice('mailto:'.length),
      domain: due.domain,
      submitter: reporter.submitter,
      reportId: (JSON.parse(due.json) as TlsReport)['report-id'],
      fileName,
      gzipped,
      day: due.day,
    });
    await deps.queueMail(message);
    return { ok: true, status: 0 };
  }
  const c = deps.config.tlsrpt;
  return postReport(due.destination, gzipped, {
    dnsServers: deps.config.delivery.dns.servers,
    timeoutMs: c.timeout_ms,
    allowPrivate: c.allow_private_destinations,
    ...(c.ca_file ? { ca: readFileSync(c.ca_file) } : {}),
  });
}

/** Sends what is due at now; returns the settlements made. */
export async function sendDueReports(deps: TlsRptDeps): Promise<TlsReportSettlement[]> {
  const { store, logger } = deps;
  const clock = deps.now ?? Date.now;
  const settlements: TlsReportSettlement[] = [];
  for (const due of await store.dueTlsReports(clock(), SEND_BATCH)) {
    if (deps.signal?.aborted) break;
    let result: PostResult;
    try {
      result = await sendOne(deps, due);
    } catch (err) {
      result = { ok: false, error: (err as Error).message };
    }
    const at = clock();
    const key = { reportId: due.reportId, destination: due.destination, at };
    const fields = { event: 'tlsrpt.sent', domain: due.domain, day: due.day, destination: due.destination, attempt: due.attempts + 1 };
    if (result.ok) {
      settlements.push({ ...key, result: 'sent' });
      logger.info(fields, `TLS report ${due.domain} ${due.day} → ${due.destination}`);
    } else {
      const wait = Math.min((deps.retryFirstMs ?? RETRY_FIRST_MS) * 2 ** due.attempts, RETRY_MAX_MS) * (0.9 + (deps.random ?? Math.random)() * 0.2);
      const nextAt = at + wait;
      if (nextAt >= due.giveUpAt) {
        settlements.push({ ...key, result: 'failed', error: result.error });
        logger.error({ ...fields, event: 'tlsrpt.gave_up', error: result.error }, `TLS report ${due.domain} ${due.day} → ${due.destination}: gave up (${result.error})`);
      } else {
        settlements.push({ ...key, result: 'retry', nextAt, error: result.error });
        logger.warn({ ...fields, event: 'tlsrpt.failed', error: result.error, nextAt: new Date(nextAt).toISOString() }, `TLS report ${due.domain} ${due.day} → ${due.destination}: ${result.error}; trying again`);
      }
    }
  }
  if (settlements.length) await store.settleTlsReports(settlements);
  return settlements;
}

export interface TlsRptJob {
  /** Ticks finished so far (tests wait for them). */
  readonly ticks: number;
  stop(): Promise<void>;
}

/** Runs the daily reports and their sending in the relay; nothing when tlsrpt.enabled is false. */
export function startTlsRptJob(deps: TlsRptDeps & { tickMs?: number }): TlsRptJob | null {
  if (!deps.config.tlsrpt.enabled) return null;
  const log = deps.logger.child({ component: 'tlsrpt' });
  const stopping = new AbortController();
  const job = { ...deps, logger: log, signal: stopping.signal };
  const clock = deps.now ?? Date.now;
  const jitterMs = deps.config.tlsrpt.jitter_minutes * 60_000;
  /** This process's random start within the jitter, per day reported. */
  const startAfter = new Map<string, number>();
  let timer: NodeJS.Timeout | null = null;
  let running: Promise<void> = Promise.resolve();
  let stopped = false;
  let ticks = 0;

  const tick = async () => {
    const now = clock();
    const day = previousDay(now);
    if (!startAfter.has(day)) {
      startAfter.clear();
      startAfter.set(day, Math.floor((deps.random ?? Math.random)() * jitterMs));
    }
    if (now - dayRange(dayOf(now)).start >= startAfter.get(day)!) await makeDayReports(job, day);
    await sendDueReports(job);
  };
  const arm = (ms: number) => {
    if (stopped) return;
    timer = setTimeout(() => {
      timer = null;
      running = tick()
        .catch((err: Error) => log.error({ event: 'tlsrpt.failed_run', err: err.message }, 'TLS report run failed; trying again at the next'))
        .finally(() => {
          ticks += 1;
          arm(deps.tickMs ?? TICK_MS);
        });
    }, ms);
    // Never keeps a stopping process alive.
    timer.unref();
  };
  arm(0);
  return {
    get ticks() {
      return ticks;
    },
    stop() {
      stopped = true;
      stopping.abort();
      if (timer) clearTimeout(timer);
      timer = null;
      return running;
    },
  };
}
