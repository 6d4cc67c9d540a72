// The webhook dispatcher: runs in the relay's main process, woken by a timer
// (webhooks.poll_interval_ms) and when a request ends. Each turn, per endpoint: copy
// the new events into its outbox (outbox.ts), then claim the due deliveries it has
// room for (concurrency) and send them. Every store call goes to the store thread
// and every request is asynchronous: SMTP sessions never wait for a receiver.
//
// Delivery is at least once: a delivery is settled only after the receiver's answer,
// so a request cut off by a crash is sent again after the restart. A non-2xx answer
// or no answer is retried with exponential backoff and jitter (retry.first_seconds ×
// factor^n, at most max_seconds), until give_up_hours have passed since the event
// was queued: then it is `failed` (webhooks status; webhooks replay sends it again).
import type { WebhookEndpointConfig, WebhooksConfig } from '../../config/webhooks.ts';
import type { Logger } from '../../log.ts';
import type { Store } from '../../store/store.ts';
import type { WebhookDelivery, WebhookSettlement } from './outbox.ts';
import { createPoster, type Poster, type PostResult } from './post.ts';
import { EVENT_ID_HEADER, SIGNATURE_HEADER, type WebhookSigner } from './signing.ts';

/** Events read per copy; a backlog is copied over several turns. */
const COPY_BATCH = 1000;
/** Copies per endpoint per turn: the copying of a large backlog never hogs the store thread. */
const COPIES_PER_TURN = 10;
/** A claimed delivery's lease outlasts its request's deadline by this much. */
const LEASE_SLACK_MS = 30_000;
/** How often settled deliveries older than keep_days are pruned. */
const PRUNE_EVERY_MS = 60 * 60 * 1000;
const USER_AGENT = 'SealRelay-Webhooks/1';

export interface WebhookDispatcher {
  /** New endpoints, secrets and settings from the next turn on; requests in flight finish as they were. */
  update(config: WebhooksConfig, signers: ReadonlyMap<string, WebhookSigner>): void;
  /** A turn now (tests; a replay). */
  kick(): void;
  /** Stops the timer, cuts off the requests in flight and waits for the turn; what they leave unsettled is sent again after a restart. */
  stop(): Promise<void>;
}

export interface DispatcherOptions {
  store: Store;
  logger: Logger;
  config: WebhooksConfig;
  signers: ReadonlyMap<string, WebhookSigner>;
  /** The clock (tests move it past give_up_hours). */
  now?: () => number;
  /** Jitter in [0, 1) (tests make backoff exact). */
  random?: () => number;
  poster?: Poster;
}

/** The wait before the next try after `failures` failed requests: exponential, capped, jittered into its upper half. */
export function backoffMs(failures: number, retry: WebhooksConfig['retry'], random: () => number = Math.random): number {
  const full = Math.min(retry.max_seconds, retry.first_seconds * retry.factor ** Math.max(0, failures - 1)) * 1000;
  return full / 2 + (full / 2) * random();
}

export function startWebhookDispatcher(opts: DispatcherOptions): WebhookDispatcher {
  const log = opts.logger.child({ component: 'webhooks' });
  const now = opts.now ?? Date.now;
  const random = opts.random ?? Math.random;
  const poster = opts.poster ?? createPoster();
  const { store } = opts;
  let config = opts.config;
  let signers = opts.signers;
  let stopped = false;
  let timer: NodeJS.Timeout | null = null;
  let turn: Promise<void> | null = null;
  let again = false;
  let lastPrune = 0;
  /** Requests in flight, by endpoint name. */
  const inFlight = new Map<string, number>();
  const requests = new Set<Promise<void>>();
  const recovered: Promise<unknown> = store.recoverWebhookDeliveries().catch((err: Error) => log.error({ event: 'webhooks.error', err: err.message }, 'could not free the deliveries in flight at the last stop'));

  const send = async (endpoint: WebhookEndpointConfig, signer: WebhookSigner, d: WebhookDelivery): Promise<void> => {
    const at = Math.floor(now() / 1000);
    const headers = {
      'Content-Type': 'application/json',
      'User-Agent': USER_AGENT,
      [EVENT_ID_HEADER]: d.eventId,
      [SIGNATURE_HEADER]: signer.sign(d.body, at),
    };
    const result: PostResult = await poster.post(endpoint.url, headers, d.body, endpoint.timeout_seconds * 1000);
    // Cut off by stop(): left under its lease, freed and sent again at the next start.
    if (stopped) return;
    const ended = now();
    let settlement: WebhookSettlement;
    if (result.status !== null && result.status >= 200 && result.status < 300) {
      settlement = { endpoint: d.endpoint, eventId: d.eventId, at: ended, delivered: true, status: result.status };
    } else {
      const error = result.status === null ? result.error : `HTTP ${result.status}`;
      // The last try falls on the give-up time itself; only one that fails after it gives up.
      const giveUpAt = d.queuedAt + config.retry.give_up_hours * 3600_000;
      const nextAt = ended >= giveUpAt ? null : Math.min(ended + backoffMs(d.attempts + 1, config.retry, random), giveUpAt);
      settlement = { endpoint: d.endpoint, eventId: d.eventId, at: ended, delivered: false, status: result.status, error, nextAt };
      const fields = { event: nextAt === null ? 'webhooks.gave_up' : 'webhooks.failed', endpoint: d.endpoint, eventId: d.eventId, type: d.type, attempt: d.attempts + 1, status: result.status, error };
      if (nextAt === null) log.error(fields, `webhook ${d.endpoint}: gave ${d.eventId} up after ${d.attempts + 1} tries (${error})`);
      else log.warn({ ...fields, nextAt: new Date(nextAt).toISOString() }, `webhook ${d.endpoint}: ${error}; trying again`);
    }
    await store.settleWebhookDeliveries([settlement]);
  };

  const start = (endpoint: WebhookEndpointConfig, signer: WebhookSigner, d: WebhookDelivery) => {
    inFlight.set(endpoint.name, (inFlight.get(endpoint.name) ?? 0) + 1);
    const request = send(endpoint, signer, d)
      .catch((err: Error) => log.error({ event: 'webhooks.error', endpoint: endpoint.name, eventId: d.eventId, err: err.message }, 'a webhook request could not be settled; it is sent again when its lease ends'))
      .finally(() => {
        inFlight.set(endpoint.name, (inFlight.get(endpoint.name) ?? 1) - 1);
        requests.delete(request);
        // Room for the next one, and perhaps the next event of the same message.
        kick();
      });
    requests.add(request);
  };

  const runTurn = async (): Promise<void> => {
    await recovered;
    const settings = config;
    for (const endpoint of settings.endpoints) {
      // Stopped, or reloaded: the turn update() asked for takes over with the new endpoints.
      if (stopped || config !== settings) return;
      const signer = signers.get(endpoint.name);
      if (!signer) continue;
      for (let i = 0; i < COPIES_PER_TURN; i++) {
        if ((await store.copyWebhookEvents(endpoint.name, endpoint.events ?? null, COPY_BATCH, now())) < COPY_BATCH) break;
      }
      const room = endpoint.concurrency - (inFlight.get(endpoint.name) ?? 0);
      if (room <= 0 || stopped) continue;
      const due = await store.claimWebhookDeliveries(endpoint.name, room, endpoint.timeout_seconds * 1000 + LEASE_SLACK_MS, now());
      // Sent as the endpoint is configured now (a reload may have come meanwhile). Claimed while
      // stop() ran, or for an endpoint just removed: left under their leases, sent when those end.
      const current = config.endpoints.find((e) => e.name === endpoint.name);
      const currentSigner = signers.get(endpoint.name);
      if (!stopped && current && currentSigner) for (const d of due) start(current, currentSigner, d);
    }
    if (now() - lastPrune >= PRUNE_EVERY_MS) {
      lastPrune = now();
      const pruned = await store.pruneWebhookDeliveries(now() - config.keep_days * 24 * 3600_000);
      if (pruned) log.info({ event: 'webhooks.pruned', deliveries: pruned }, `pruned ${pruned} settled webhook deliveries`);
    }
  };

  const arm = (ms: number) => {
    if (stopped) return;
    if (timer) clearTimeout(timer);
    timer = setTimeout(() => {
      timer = null;
      kick();
    }, ms);
    // Never keeps a stopping process alive.
    timer.unref();
  };

  function kick(): void {
    if (stopped) return;
    // One turn at a time; a kick during a turn runs one more after it.
    if (turn) {
      again = true;
      return;
    }
    turn = runTurn()
      .catch((err: Error) => log.error({ event: 'webhooks.error', err: err.message }, 'webhook turn failed; trying again at the next'))
      .finally(() => {
        turn = null;
        if (again) {
          again = false;
          kick();
        } else arm(config.poll_interval_ms);
      });
  }

  kick();
  return {
    update(next, nextSigners) {
      config = next;
      signers = nextSigners;
      kick();
    },
    kick,
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      timer = null;
      poster.close();
      await turn;
      await recovered;
      await Promise.all([...requests]);
    },
  };
}
