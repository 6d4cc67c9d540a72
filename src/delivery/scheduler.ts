// The delivery worker: claims due recipients from the store, groups them into
// jobs (one message, one destination domain, one decision → one SMTP
// transaction), runs at most `concurrency` jobs at once, and settles each job in
// one store transaction: records, new queue state and any bounce together.
//
// The store is the only state that matters: a claim is a lease, so a worker that
// dies mid-attempt loses nothing (the lease expires and the work is tried again;
// at worst a message is delivered twice, never zero times).
import { randomUUID } from 'node:crypto';
import type { Config } from '../config/schema.ts';
import type { MtaStsState } from '../domains/mta-sts-cache.ts';
import { ByteBudget } from '../crypto/byte-budget.ts';
import { mtaStsCacheFor } from '../domains/mta-sts-relay.ts';
import { releasedMessageBytes } from '../gc-hint.ts';
import type { Logger } from '../log.ts';
import type { Policy } from '../policy/decide.ts';
import { makeDecision, type Decision } from '../policy/decision.ts';
import { dlpScannerFor } from '../policy/dlp/for-config.ts';
import { informedBy, informedByMtaSts } from '../policy/domain-knowledge.ts';
import { messageContext } from '../policy/message-context.ts';
import type { NewMessage, NewPortalItem, QueueItem, Settlement, Store } from '../store/store.ts';
import type { Protection } from '../crypto/protection.ts';
import type { Job, RecipientResult } from './attempt.ts';
import { deliverJob, outgoing, type DeliverDeps, type Outgoing } from './deliver.ts';
import { portalDesk, portalUnavailable } from '../portal/handoff.ts';
import type { Keyring } from '../portal/master-keys.ts';
import { expired, nextAttemptAt } from './backoff.ts';
import { headerBlock } from '../mime/header-block.ts';
import { bounceFor } from './bounce.ts';
import { DestinationCache } from './destination-cache.ts';
import { prepareForDelivery } from './prepare.ts';
import { splitSuppressed } from './suppressed.ts';
import { deliverTracked, type TrackingLinks } from './tracked.ts';
import { LinkSigner } from '../reporting/tracking/links.ts';
import { makeRecord, type DeliveryRecord } from './record.ts';
import { SessionPool, type PoolLimits } from './pool.ts';
import type { Session } from './connection.ts';
import { hopsBeforeUs, tooManyHops, type OwnListener } from './loops.ts';
import { asksTlsOptional, withTlsDemands } from './require-tls.ts';
import { configuredVerification } from '../policy/verification.ts';

export interface DeliveryWorker {
  /** New work was queued: look now instead of at the next poll. */
  kick(): void;
  /** Stops claiming, waits up to `graceMs` for jobs in flight, gives back what never started. */
  stop(graceMs: number): Promise<void>;
  reload(config: Config, policy: Policy, protection: Protection, keyring: Keyring | null, trackingKey?: Buffer | null): void;
  /** The addresses and ports ingress is actually bound to: a next hop among them is a loop. */
  setListeners(listeners: readonly OwnListener[]): void;
  /** Where recipients reach the portal (portal.public_url, else its bound listener): the links in notifications. */
  setPortalUrl(url: string | null): void;
  /** Jobs in flight (for tests and shutdown). */
  readonly busy: number;
}

/** A kick waits this long for company before claiming (at most this much added delivery latency). */
const KICK_COALESCE_MS = 5;

/** How many recipients one claim takes per free job slot: enough to fill a transaction, not so many that leases age. */
const CLAIM_PER_SLOT = 8;
/** Leases of claimed work are renewed this many times per lease period while the work lasts. */
const RENEWALS_PER_LEASE = 3;

export function startDelivery(deps: {
  config: Config;
  store: Store;
  logger: Logger;
  policy: Policy;
  protection: Protection;
  /** The portal's master keys (portal.master_keys); null or absent: none configured. */
  keyring?: Keyring | null;
  /** Where recipients reach the portal, when known (setPortalUrl). */
  portalUrl?: string | null;
  /** tracking.key (reporting/tracking/key.ts); null or absent: none configured. */
  trackingKey?: Buffer | null;
  /** Ingress's bound listeners when known; until then the configured ones with a fixed port. */
  listeners?: readonly OwnListener[];
}): DeliveryWorker {
  let { config, policy, protection } = deps;
  let keyring = deps.keyring ?? null;
  let portalUrl = deps.portalUrl ?? null;
  const portalFor = (): DeliverDeps['portal'] => {
    const base = config.portal.public_url ?? portalUrl;
    const why = portalUnavailable(keyring, base);
    return why === null ? portalDesk(config, keyring!, base!) : { unavailable: why };
  };
  let portal = portalFor();
  let trackingKey = deps.trackingKey ?? null;
  // Tracking links point where the portal listener is reached, unless tracking.public_url says otherwise.
  const trackingFor = (): TrackingLinks | null => {
    const base = config.tracking.public_url ?? config.portal.public_url ?? portalUrl;
    return trackingKey && base ? { base, signer: new LinkSigner(trackingKey) } : null;
  };
  let tracking = trackingFor();
  let listeners = deps.listeners ?? configuredListeners(config);
  const { store, logger } = deps;
  const owner = `worker-${randomUUID()}`;
  const pool = new SessionPool<Session>(poolLimits(config));
  const destinations = new DestinationCache();
  const ready: Claimed[] = [];
  /** What this worker holds under lease (claimed, waiting or in flight), by queueId.seq: renewed while it lasts. */
  const held = new Map<string, { queueId: string; seq: number }>();
  /** Bounds the message bytes held by jobs at once (byte-budget.ts). */
  let bodies = new ByteBudget(config.delivery.inflight_budget_bytes);
  const heldKey = (i: { queueId: string; seq: number }) => `${i.queueId}.${i.seq}`;
  let mtaSts = mtaStsCacheFor(config, store, logger);
  let dlp = dlpScannerFor(config);
  /** The domain's MTA-STS state; statically routed domains and a disabled feature have none. */
  const mtaStsFor = async (domain: string): Promise<MtaStsState | null> => {
    if (!mtaSts || !domain || config.delivery.routes[domain]) return null;
    try {
      return await mtaSts.policyFor(domain);
    } catch (err) {
      logger.warn({ event: 'delivery.error', domain, err: (err as Error).message }, 'MTA-STS lookup failed');
      return null;
    }
  };
  const inFlight = new Set<Promise<void>>();
  let stopping = false;
  let pumping = false;
  /** The last claim was full: more due work may be waiting in the store. */
  let backlog = false;
  let again = false;
  let timer: NodeJS.Timeout | null = null;

  /** When the pending pump runs (ms since the epoch); a new request never postpones it. */
  let timerDue = Infinity;
  const schedule = (delayMs: number) => {
    if (stopping) return;
    const due = Date.now() + Math.max(0, delayMs);
    if (timer && timerDue <= due) return;
    if (timer) clearTimeout(timer);
    timerDue = due;
    timer = setTimeout(() => {
      timer = null;
      timerDue = Infinity;
      void pump();
    }, Math.max(0, delayMs));
  };

  async function pump(): Promise<void> {
    if (pumping) {
      again = true;
      return;
    }
    pumping = true;
    try {
      do {
        again = false;
        await fill();
      } while (again && !stopping);
    } catch (err) {
      logger.error({ event: 'store.error', err }, 'delivery worker could not read the queue');
    } finally {
      pumping = false;
    }
    if (stopping) return;
    const poll = config.delivery.poll_interval_ms;
    // Only an idle worker needs to know when the next deferred work falls due.
    const next = backlog ? null : await store.nextDueAt().catch(() => null);
    schedule(next === null ? poll : Math.min(poll, next - Date.now()));
  }

  async function fill(): Promise<void> {
    const slots = () => config.delivery.concurrency - inFlight.size;
    while (!stopping) {
      if (slots() <= 0) {
        // Saturated: whatever woke us stays in the store until a slot frees.
        backlog = true;
        return;
      }
      if (!ready.length) {
        const limit = slots() * CLAIM_PER_SLOT;
        const items = await store.claim({ owner, limit, leaseMs: config.delivery.lease_seconds * 1000 });
        for (const { queueId, seq } of items) held.set(heldKey({ queueId, seq }), { queueId, seq });
        // A full claim means more may be due: claim again as soon as a job slot frees.
        backlog = items.length === limit;
        if (!items.length) return;
        ready.push(...groupByDestination(items));
      }
      while (ready.length && slots() > 0 && !stopping) run(ready.shift()!);
    }
  }

  function run(group: Claimed): void {
    // Its lease is renewed while it waits for its bytes (renewLeases below); a job whose
    // turn comes after stop() began is given back untried, like the claimed ones waiting.
    const p = bodies
      .run(group.items[0]!.size, () => (stopping ? store.unclaim(group.items) : execute(group)))
      .catch((err) =>
        // Only the store can fail here (execute settles every other failure): the leases run out and the work is tried again.
        logger.error({ event: 'store.error', err, queueId: group.queueId }, 'could not settle a delivery job; its recipients are retried when their leases expire'),
      )
      .finally(() => {
        // The message and the copies made for sending are done with (gc-hint.ts).
        releasedMessageBytes(group.items[0]!.size);
        inFlight.delete(p);
        for (const item of group.items) held.delete(heldKey(item));
        // New work arrives by kick() and deferred work by the poll: a freed slot only
        // needs a pump when claimed jobs wait or the last claim left work behind.
        if (!stopping && (ready.length || backlog)) void pump();
      });
    inFlight.add(p);
  }

  /**
   * One message to one domain: decide per recipient, then one attempt per distinct decision.
   * Whatever throws on the way (a bug, an address nothing expected) ends like any failed
   * attempt — a deferred record with the error, the usual backoff, a bounce at the queue
   * lifetime — never as work left leased to be claimed and fail again unseen.
   */
  async function execute(group: Claimed): Promise<void> {
    const [body, knowledge, sts] = await Promise.all([store.readBody(group.queueId), store.getDomain(group.domain), mtaStsFor(group.domain)]);
    if (!body) {
      // Deleted by an operator while claimed: nothing to send, nothing to record.
      await store.unclaim(group.items);
      return;
    }
    let jobs: Job[];
    let prepared: Outgoing;
    const started = Date.now();
    try {
      const first = group.items[0]!;
      const dlpHits = await dlp.hits(group.queueId, body);
      const ctx = messageContext({ sender: first.sender, authUser: first.authUser, headerBlock: headerBlock(body), subject: first.subject, dlpHits, origin: first.origin });
      // Prepared and (when DKIM applies) signed once for every job of this message and domain.
      prepared = outgoing(prepareForDelivery(body, policy), protection);
      // The message's own TLS demands last (RFC 8689, require-tls.ts): REQUIRETLS, or an allowed TLS-Required: No.
      const demands = { requireTls: first.requireTls === true, tlsOptional: asksTlsOptional(ctx.headers), authUser: first.authUser, sts };
      const decide = (rcpt: string) =>
        withTlsDemands(informedByMtaSts(informedBy(policy.decide(rcpt, ctx), group.domain, knowledge), group.domain, sts), { ...demands, allowedBy: demands.tlsOptional ? policy.tlsRequiredNoRule(rcpt, ctx) : null });
      // An honoured TLS-Required: No sets MTA-STS aside for its job (RFC 8689 §4.2.2).
      jobs = splitByDecision(group, decide).map((job) => ({ ...job, mtaSts: job.decision.tlsRequiredNo ? null : sts }));
    } catch (err) {
      await commit(await failed(undecided(group), err, body, started), group.queueId);
      return;
    }
    // Checked before each attempt, not only at ingress: max_hops may have been lowered since this was queued.
    const hops = hopsBeforeUs(body);
    for (const job of jobs) {
      const started = Date.now();
      const maxHops = config.ingress.max_hops;
      let outcome: Settled;
      try {
        const results = hops > maxHops ? tooManyHops(job, hops, maxHops) : await deliverUnlessSuppressed(job, prepared);
        outcome = await settled(job, results, body, started);
      } catch (err) {
        outcome = await failed(job, err, body, started);
        await commit(outcome, job.queueId);
        continue;
      }
      // store.finish is one transaction: when it refuses what the attempt came to, nothing of it
      // was written, and the failure is settled in its place (a store that is down refuses both).
      await commit(outcome, job.queueId).catch(async (err: unknown) => commit(await failed(job, err, body, started), job.queueId));
    }
  }

  /** The job's suppressed recipients settled as such; the others delivered, each with a tracked copy when the decision asks. */
  async function deliverUnlessSuppressed(job: Job, prepared: Outgoing): Promise<RecipientResult[]> {
    const { sending, suppressed } = await splitSuppressed(job, store);
    if (!sending) return suppressed;
    const deliverDeps: DeliverDeps = { config, pool, destinations, logger, protection, portal, self: { hostname: config.server.hostname, listeners } };
    const onFailure = (err: unknown) => logger.warn({ event: 'delivery.error', err, queueId: job.queueId }, 'could not add tracking to the message: sent without it');
    const sent = await deliverTracked(sending, prepared, { tracking, protection, onFailure }, (j, m) => deliverJob(j, m, deliverDeps));
    return [...suppressed, ...sent];
  }

  /** What one job's results come to: the records, the new queue state and any bounce. */
  async function settled(job: Job, results: readonly RecipientResult[], body: Buffer, started: number): Promise<Settled> {
    const now = Date.now();
    const records: DeliveryRecord[] = [];
    const settlements: Settlement[] = [];
    const bounced: RecipientResult[] = [];
    const portalItems: NewPortalItem[] = [];
    const notices: NewMessage[] = [];
    for (let r of results) {
      const { item } = r;
      if (r.outcome === 'deferred' && expired(item.receivedAt, now, config.delivery.retry)) {
        r = { ...r, outcome: 'bounced', smtp: { ...r.smtp, response: `${r.smtp.response} (delivery time expired after ${config.delivery.retry.lifetime_seconds}s in the queue)` } };
      }
      records.push(toRecord(job.decision, r, started, now));
      const error = r.outcome === 'delivered' ? null : r.smtp.response;
      if (r.outcome === 'deferred') {
        settlements.push({ queueId: item.queueId, seq: item.seq, outcome: 'deferred', error: r.smtp.response, nextAttemptAt: nextAttemptAt(item.attempt, item.receivedAt, now, config.delivery.retry) });
      } else {
        settlements.push({ queueId: item.queueId, seq: item.seq, outcome: r.outcome, error });
      }
      if (r.outcome === 'bounced') bounced.push(r);
      if (r.portal) {
        portalItems.push(r.portal.item);
        notices.push(r.portal.notification);
      }
    }
    const bounce = bounced.length ? await bounceFor(job, bounced, body, config.server.hostname) : null;
    return { records, settlements, bounce: bounce?.message ?? null, bounced: bounce?.reported ?? 0, portalItems, notices };
  }

  /**
   * A job that threw: every recipient deferred with the error (bounced once the queue
   * lifetime is over). Built so that it cannot throw itself: a record or a DSN that
   * cannot be made is logged and left out, the queue state is always settled.
   */
  async function failed(job: Job, err: unknown, body: Buffer, started: number): Promise<Settled> {
    const message = (err as Error)?.message ?? String(err);
    logger.error({ event: 'delivery.error', err, queueId: job.queueId, domain: job.domain }, 'delivery job failed unexpectedly: its recipients are deferred with the error');
    const results = job.items.map(
      (item): RecipientResult => ({ item, outcome: 'deferred', method: 'none', mx: null, starttlsOffered: null, tls: null, smtp: { code: 451, enhanced: '4.3.0', response: `delivery failed: ${message}` } }),
    );
    try {
      return await settled(job, results, body, started);
    } catch (again) {
      // settled() itself is where it broke (a record or a DSN it cannot make): settle the queue without them.
      logger.error({ event: 'delivery.error', err: again, queueId: job.queueId }, 'could not write the records or the bounce of a failed job; settling its recipients without them');
      const now = Date.now();
      const response = `delivery failed: ${message}`;
      const settlements = job.items.map((item): Settlement => {
        if (expired(item.receivedAt, now, config.delivery.retry)) return { queueId: item.queueId, seq: item.seq, outcome: 'bounced', error: `${response} (delivery time expired)` };
        return { queueId: item.queueId, seq: item.seq, outcome: 'deferred', error: response, nextAttemptAt: nextAttemptAt(item.attempt, item.receivedAt, now, config.delivery.retry) };
      });
      return { records: [], settlements, bounce: null, bounced: 0, portalItems: [], notices: [] };
    }
  }

  /** A job for a group whose decisions were never made: the default policy's mode, saying so. */
  function undecided(group: Claimed): Job {
    const d = config.policies.default;
    return {
      queueId: group.queueId,
      domain: group.domain,
      sender: group.items[0]!.sender,
      items: group.items,
      decision: makeDecision({
        rule: 'default',
        mode: d.mode,
        verification: configuredVerification(d.verification, config.delivery.dns.dnssec),
        fallbackChain: [],
        floor: { minVersion: config.tls.min_version, minCipherBits: config.tls.min_cipher_bits },
        portal: { expiryDays: config.portal.expiry_days, keyInLink: false, showSubject: false, passphrase: null },
        tlsExpected: false,
        reasons: ['no decision was made: the job failed before policy was applied'],
      }),
    };
  }

  /** One store transaction for the job's records, queue state and bounce; then the log lines. */
  async function commit(outcome: Settled, queueId: string): Promise<void> {
    const { records, settlements, bounce, portalItems, notices } = outcome;
    await store.finish(records, settlements, bounce ? [bounce, ...notices] : notices, portalItems);
    for (const record of records) {
      logger.info({ event: 'delivery.record', queueId: record.queueId, seq: record.seq, domain: record.domain, record }, `${record.recipient} ${record.outcome} via ${record.method}`);
    }
    if (bounce) {
      logger.info({ event: 'delivery.bounce_queued', queueId: bounce.queueId, original: queueId, recipients: outcome.bounced }, 'bounce queued to the sender');
    }
    for (const notice of notices) {
      logger.info({ event: 'portal.notification_queued', queueId: notice.queueId, original: queueId }, 'portal notification queued to the recipient');
    }
    if (bounce || notices.length) deliveryWorker.kick();
  }

  // A job may outlast its lease (a large message to a slow host, a queue of sealed copies):
  // what is still held is renewed well before the lease runs out, so it is never claimed twice.
  function renewLeases(): NodeJS.Timeout {
    const leaseMs = config.delivery.lease_seconds * 1000;
    const timer = setInterval(() => {
      if (!held.size) return;
      store.renewLeases(owner, [...held.values()], leaseMs).catch((err: unknown) => logger.error({ event: 'store.error', err }, 'could not renew the leases of work in progress'));
    }, leaseMs / RENEWALS_PER_LEASE);
    timer.unref();
    return timer;
  }
  let renewal: NodeJS.Timeout | undefined;

  const deliveryWorker: DeliveryWorker = {
    kick() {
      // Submissions arriving together are claimed together: one claim per few messages, not one each.
      if (!stopping) schedule(KICK_COALESCE_MS);
    },
    async stop(graceMs) {
      stopping = true;
      if (timer) clearTimeout(timer);
      clearInterval(renewal);
      const pending = ready.splice(0);
      for (const item of pending.flatMap((j) => j.items)) held.delete(heldKey(item));
      await store.unclaim(pending.flatMap((j) => j.items)).catch(() => undefined);
      let graceTimer: NodeJS.Timeout | undefined;
      const grace = new Promise<void>((resolve) => (graceTimer = setTimeout(resolve, graceMs)));
      await Promise.race([Promise.allSettled([...inFlight]), grace]);
      clearTimeout(graceTimer);
      // Anything still running keeps its lease: after a restart it is tried again.
      pool.close();
    },
    reload(newConfig, newPolicy, newProtection, newKeyring, newTrackingKey = null) {
      pool.configure(poolLimits(newConfig));
      const leaseChanged = newConfig.delivery.lease_seconds !== config.delivery.lease_seconds;
      // Jobs already waiting keep the old budget; new ones take the new size.
      if (newConfig.delivery.inflight_budget_bytes !== config.delivery.inflight_budget_bytes) bodies = new ByteBudget(newConfig.delivery.inflight_budget_bytes);
      config = newConfig;
      if (leaseChanged && !stopping) {
        clearInterval(renewal);
        renewal = renewLeases();
      }
      policy = newPolicy;
      protection = newProtection;
      keyring = newKeyring;
      portal = portalFor();
      trackingKey = newTrackingKey;
      tracking = trackingFor();
      destinations.clear();
      mtaSts = mtaStsCacheFor(newConfig, store, logger);
      dlp = dlpScannerFor(newConfig);
    },
    setListeners(bound) {
      listeners = bound;
    },
    setPortalUrl(url) {
      portalUrl = url;
      portal = portalFor();
      tracking = trackingFor();
    },
    get busy() {
      return inFlight.size;
    },
  };
  renewal = renewLeases();
  schedule(0);
  return deliveryWorker;
}

function poolLimits(config: Config): PoolLimits {
  return { perHost: config.delivery.connections_per_host, idleMs: config.delivery.idle_reuse_ms, maxTransactions: config.delivery.max_transactions_per_connection };
}

/** The listeners of the config whose port is known before they are bound (port 0 is only known once bound). */
function configuredListeners(config: Config): OwnListener[] {
  return Object.values(config.ingress.listeners)
    .filter((l) => l.port !== 0)
    .map((l) => ({ host: l.host, port: l.port }));
}

/** What a job comes to, committed in one store transaction. */
interface Settled {
  readonly records: readonly DeliveryRecord[];
  readonly settlements: readonly Settlement[];
  readonly bounce: NewMessage | null;
  /** How many recipients the bounce reports. */
  readonly bounced: number;
  /** Items for recipients the portal took, and their notifications: committed with the rest. */
  readonly portalItems: readonly NewPortalItem[];
  readonly notices: readonly NewMessage[];
}

/** Claimed recipients of one message for one domain: what can share a destination. */
interface Claimed {
  readonly queueId: string;
  readonly domain: string;
  readonly items: readonly QueueItem[];
}

function groupByDestination(items: readonly QueueItem[]): Claimed[] {
  const groups = new Map<string, { queueId: string; domain: string; items: QueueItem[] }>();
  for (const item of items) {
    const key = `${item.queueId}\0${item.domain}`;
    const group = groups.get(key);
    if (group) group.items.push(item);
    else groups.set(key, { queueId: item.queueId, domain: item.domain, items: [item] });
  }
  return [...groups.values()];
}

/** One job per distinct decision: the recipients that share one SMTP transaction. */
export function splitByDecision(group: Claimed, decide: (recipient: string) => Decision): Job[] {
  const jobs = new Map<string, Job>();
  for (const item of group.items) {
    const decision = decide(item.recipient);
    const key = decisionKey(decision);
    const job = jobs.get(key);
    if (job) (job.items as QueueItem[]).push(item);
    else jobs.set(key, { queueId: group.queueId, domain: group.domain, sender: item.sender, decision, items: [item] });
  }
  return [...jobs.values()];
}

function decisionKey(d: Decision): string {
  const t = d.tracking;
  return [d.rule, d.mode, d.verification, d.floor.minVersion, d.floor.minCipherBits, d.tlsExpected, d.fallbackChain.join(','), t.opens, t.clicks, t.unsubscribe, d.transactional, d.requireTls === true, d.tlsRequiredNo === true].join('|');
}

/** The DeliveryRecord of one recipient's result in one attempt. */
export function toRecord(decision: Decision, r: RecipientResult, started: number, now: number): DeliveryRecord {
  const { item } = r;
  return makeRecord({
    queueId: item.queueId,
    seq: item.seq,
    messageId: item.messageId,
    attempt: item.attempt,
    at: new Date(started).toISOString(),
    sender: item.sender,
    recipient: item.recipient,
    domain: item.domain,
    decision: { rule: decision.rule, mode: decision.mode, verification: decision.verification, fallbackChain: decision.fallbackChain, reasons: decision.reasons },
    method: r.method,
    outcome: r.outcome,
    mx: r.mx,
    mtaSts: r.mtaSts ?? null,
    dane: r.dane ?? null,
    encryption: r.encryption ?? null,
    fallback: r.fallback ?? null,
    portal: r.portal?.facts ?? null,
    starttlsOffered: r.starttlsOffered,
    tls: r.tls,
    smtp: r.smtp,
    durationMs: now - started,
  });
}
