// GET /metrics on the API listener: Prometheus text exposition (prom-client) of
// what the relay did and what waits. Every counter is derived from the store —
// the events outbox (events/event.ts), read on from a cursor at each scrape, and
// the queue totals — never kept apart from it: after a restart the first scrape
// reads the outbox from its start again, so the totals are the store's totals
// (Prometheus sees a counter reset at most, never a wrong count).
//
// Delivery latency is a recipient's final delivery (delivered, portal-notified)
// minus its `queued` event: the queued times of recipients still in flight are
// kept in memory, each forgotten once its recipient is settled, or when it is
// older than the queue lifetime (a message deleted by an operator leaves no event).
//
// The webhooks' backlog and totals come from their own module (events/webhooks/
// metrics.ts, read from the store too); their totals are counted on from the last read.
//
// Who may scrape is the caller's `guard` (a preHandler: the API's token check);
// this module opens no route without one. The names and labels are documented in
// the README ("Metrics").
import type { FastifyInstance, RouteShorthandOptions } from 'fastify';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { MAX_EVENT_PAGE, type EventType, type RelayEvent } from '../events/event.ts';
import type { WebhookMetrics } from '../events/webhooks/metrics.ts';
import type { Store } from '../store/store.ts';

export interface MetricsDeps {
  readonly store: Pick<Store, 'listEvents' | 'queueStats' | 'listQueue'>;
  /** Decides who may scrape (e.g. the API's bearer token check with a metrics scope); required. */
  readonly guard: NonNullable<RouteShorthandOptions['preHandler']>;
  /** The webhooks' facts per endpoint (events/webhooks/metrics.ts `webhookMetrics`); absent: none exported. */
  readonly webhooks?: () => Promise<readonly WebhookMetrics[]>;
  /** How long a queued recipient may wait for its outcome before its queued time is forgotten (the queue lifetime), in ms. */
  readonly maxQueueMs: number;
  readonly now?: () => number;
}

/** The outcome of one attempt, as events name it. */
const ATTEMPT_EVENTS: ReadonlySet<EventType> = new Set(['delivered', 'deferred', 'bounced', 'dropped', 'portal-notified']);
/** Events after which a recipient waits no more. */
const SETTLING_EVENTS: ReadonlySet<EventType> = new Set(['delivered', 'bounced', 'dropped', 'portal-notified']);
const PORTAL_EVENTS: ReadonlySet<EventType> = new Set(['portal-notified', 'portal-opened', 'replied', 'recalled', 'expired']);
/** From a fast local MX to a message that waited out greylisting and a long outage. */
const LATENCY_BUCKETS = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600, 5 * 24 * 3600];

export class RelayMetrics {
  readonly registry = new Registry();
  private cursor: string | undefined;
  /** `${queueId}.${seq}` → when it was queued (ms), for recipients not yet settled. */
  private readonly queuedAt = new Map<string, number>();
  private duplicatesSeen = 0;
  /** One refresh at a time: two scrapes at once must not read the same events twice. */
  private refreshing: Promise<void> | null = null;
  private readonly now: () => number;

  private readonly queued: Counter;
  private readonly attempts: Counter<'outcome' | 'method'>;
  private readonly tls: Counter<'version'>;
  private readonly latency: Histogram<'outcome'>;
  private readonly portal: Counter<'event'>;
  private readonly duplicates: Counter;
  private readonly queueMessages: Gauge;
  private readonly queueRecipients: Gauge<'state'>;
  private readonly queueBytes: Gauge;
  private readonly oldestAge: Gauge;
  private readonly webhooks: WebhookGauges | null;
  /** The webhooks' running totals per endpoint as last read, to count on from. */
  private readonly webhookTotals = new Map<string, WebhookTotals>();

  constructor(private readonly deps: Omit<MetricsDeps, 'guard'>) {
    this.now = deps.now ?? Date.now;
    const registers = [this.registry];
    this.queued = new Counter({ name: 'sealrelay_recipients_queued_total', help: 'Recipients accepted into the queue (submitted mail, bounces and portal mail).', registers });
    this.attempts = new Counter({
      name: 'sealrelay_delivery_attempts_total',
      help: 'Delivery attempts per recipient, by outcome and by the method that reached the recipient (none unless delivered or portal-notified).',
      labelNames: ['outcome', 'method'],
      registers,
    });
    this.tls = new Counter({ name: 'sealrelay_delivery_tls_attempts_total', help: 'Delivery attempts per recipient by the TLS version negotiated with the MX (none: plaintext or never connected).', labelNames: ['version'], registers });
    this.latency = new Histogram({
      name: 'sealrelay_delivery_latency_seconds',
      help: 'From queued to delivered (or handed to the portal), per recipient.',
      labelNames: ['outcome'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.portal = new Counter({ name: 'sealrelay_portal_events_total', help: 'Portal events: portal-notified, portal-opened, replied, recalled, expired.', labelNames: ['event'], registers });
    this.duplicates = new Counter({ name: 'sealrelay_possible_duplicates_total', help: 'Recipients retried after a crash cut their attempt off (each may have arrived twice).', registers });
    this.queueMessages = new Gauge({ name: 'sealrelay_queue_messages', help: 'Messages in the queue.', registers });
    this.queueRecipients = new Gauge({ name: 'sealrelay_queue_recipients', help: 'Recipients waiting in the queue, by state (queued, held).', labelNames: ['state'], registers });
    this.queueBytes = new Gauge({ name: 'sealrelay_queue_bytes', help: 'Size of the queued messages.', registers });
    this.oldestAge = new Gauge({ name: 'sealrelay_queue_oldest_age_seconds', help: 'Age of the oldest message in the queue (0 when empty).', registers });
    this.webhooks = deps.webhooks ? webhookGauges(registers) : null;
  }

  /** The exposition, after reading what the store has new. */
  async scrape(): Promise<string> {
    this.refreshing ??= this.refresh().finally(() => (this.refreshing = null));
    await this.refreshing;
    return this.registry.metrics();
  }

  private async refresh(): Promise<void> {
    for (;;) {
      const page = await this.deps.store.listEvents({ afterId: this.cursor, limit: MAX_EVENT_PAGE });
      for (const e of page) this.count(e);
      if (page.length) this.cursor = page[page.length - 1]!.id;
      if (page.length < MAX_EVENT_PAGE) break;
    }
    const now = this.now();
    for (const [key, at] of this.queuedAt) if (now - at > this.deps.maxQueueMs) this.queuedAt.delete(key);

    const [stats, oldest, webhooks] = await Promise.all([this.deps.store.queueStats(), this.deps.store.listQueue({ limit: 1 }), this.deps.webhooks?.()]);
    this.queueMessages.set(stats.messages);
    this.queueRecipients.set({ state: 'queued' }, stats.recipients - stats.held);
    this.queueRecipients.set({ state: 'held' }, stats.held);
    this.queueBytes.set(stats.bytes);
    this.oldestAge.set(oldest[0] ? Math.max(0, now - oldest[0].receivedAt) / 1000 : 0);
    if (stats.possibleDuplicates > this.duplicatesSeen) this.duplicates.inc(stats.possibleDuplicates - this.duplicatesSeen);
    this.duplicatesSeen = stats.possibleDuplicates;
    if (this.webhooks && webhooks) this.countWebhooks(this.webhooks, webhooks);
  }

  /** Gauges as they are now (an endpoint gone from the store is gone from them); totals counted on from the last read. */
  private countWebhooks(g: WebhookGauges, endpoints: readonly WebhookMetrics[]): void {
    for (const gauge of [g.backlog, g.oldest, g.failed]) gauge.reset();
    for (const w of endpoints) {
      const endpoint = { endpoint: w.endpoint };
      g.backlog.set(endpoint, w.backlog);
      g.oldest.set(endpoint, w.oldestPendingSeconds);
      g.failed.set(endpoint, w.failed);
      const last = this.webhookTotals.get(w.endpoint) ?? { delivered: 0, failedAttempts: 0, gaveUp: 0 };
      g.delivered.inc(endpoint, Math.max(0, w.deliveredTotal - last.delivered));
      g.failedAttempts.inc(endpoint, Math.max(0, w.failedAttemptsTotal - last.failedAttempts));
      g.gaveUp.inc(endpoint, Math.max(0, w.gaveUpTotal - last.gaveUp));
      this.webhookTotals.set(w.endpoint, { delivered: w.deliveredTotal, failedAttempts: w.failedAttemptsTotal, gaveUp: w.gaveUpTotal });
    }
  }

  private count(e: RelayEvent): void {
    const key = `${e.queueId}.${e.seq}`;
    if (e.type === 'queued') {
      this.queued.inc();
      this.queuedAt.set(key, e.at);
      return;
    }
    if (PORTAL_EVENTS.has(e.type)) this.portal.inc({ event: e.type });
    if (!ATTEMPT_EVENTS.has(e.type)) return;
    this.attempts.inc({ outcome: e.type, method: e.method ?? 'none' });
    this.tls.inc({ version: e.tls ?? 'none' });
    if (!SETTLING_EVENTS.has(e.type)) return;
    const queuedAt = this.queuedAt.get(key);
    this.queuedAt.delete(key);
    if (queuedAt !== undefined && (e.type === 'delivered' || e.type === 'portal-notified')) this.latency.observe({ outcome: e.type }, Math.max(0, e.at - queuedAt) / 1000);
  }
}

interface WebhookTotals {
  readonly delivered: number;
  readonly failedAttempts: number;
  readonly gaveUp: number;
}

interface WebhookGauges {
  readonly backlog: Gauge<'endpoint'>;
  readonly oldest: Gauge<'endpoint'>;
  readonly failed: Gauge<'endpoint'>;
  readonly delivered: Counter<'endpoint'>;
  readonly failedAttempts: Counter<'endpoint'>;
  readonly gaveUp: Counter<'endpoint'>;
}

function webhookGauges(registers: Registry[]): WebhookGauges {
  const labelNames = ['endpoint'] as const;
  return {
    backlog: new Gauge({ name: 'sealrelay_webhook_backlog', help: 'Webhook deliveries waiting for a 2xx, per endpoint.', labelNames, registers }),
    oldest: new Gauge({ name: 'sealrelay_webhook_oldest_pending_seconds', help: 'Age of the oldest webhook delivery waiting, per endpoint (0 when none).', labelNames, registers }),
    failed: new Gauge({ name: 'sealrelay_webhook_failed', help: 'Webhook deliveries given up and not replayed or pruned, per endpoint.', labelNames, registers }),
    delivered: new Counter({ name: 'sealrelay_webhook_delivered_total', help: 'Webhook deliveries answered with a 2xx, per endpoint.', labelNames, registers }),
    failedAttempts: new Counter({ name: 'sealrelay_webhook_failed_attempts_total', help: 'Webhook requests that failed (to be retried or given up), per endpoint.', labelNames, registers }),
    gaveUp: new Counter({ name: 'sealrelay_webhook_gave_up_total', help: 'Webhook deliveries given up after their last retry, per endpoint.', labelNames, registers }),
  };
}

/** GET /metrics behind `guard`. */
export function registerMetrics(app: FastifyInstance, deps: MetricsDeps): RelayMetrics {
  const metrics = new RelayMetrics(deps);
  app.get('/metrics', { preHandler: deps.guard }, async (_request, reply) => {
    const text = await metrics.scrape();
    return reply.header('content-type', metrics.registry.contentType).header('cache-control', 'no-store').send(text);
  });
  return metrics;
}
