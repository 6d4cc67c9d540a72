// The `webhooks` section of the config (schema.ts includes it): endpoints that are
// sent signed events (events/webhooks/), and how hard the relay tries. The signing
// secrets are never in the YAML: each is named by id and read from a file or an
// environment variable (events/webhooks/secrets.ts), as portal master keys are.
import { z } from 'zod';
import { EVENT_TYPES } from '../events/event.ts';

/** A receiver must get at least this long before the relay gives an event up (Postal: ~36 min, Mailgun: 8 h). */
export const MIN_GIVE_UP_HOURS = 72;

const LOOPBACK_HOSTS = /^(localhost|127(\.\d{1,3}){3}|\[::1\])$/i;

/** https, or http to this machine (a receiver beside the relay, tests); no credentials, no #fragment. */
const endpointUrl = z.string().superRefine((v, ctx) => {
  if (!URL.canParse(v)) return void ctx.addIssue({ code: 'custom', message: 'expected a URL, e.g. "https://crm.clinic.example/hooks/sealrelay"' });
  const url = new URL(v);
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && LOOPBACK_HOSTS.test(url.hostname))) {
    ctx.addIssue({ code: 'custom', message: 'expected an https:// URL (plain http only to 127.0.0.1, [::1] or localhost)' });
  } else if (url.username || url.password) {
    ctx.addIssue({ code: 'custom', message: 'put no user or password in the URL: receivers check the signature instead' });
  } else if (url.hash) {
    ctx.addIssue({ code: 'custom', message: 'a #fragment is never sent: leave it out' });
  }
});

/** One signing secret: its id goes in the signature header, its text (≥ 32 bytes) in a file or an environment variable. */
const webhookSecret = z
  .object({
    id: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'secret ids are 1-64 letters, digits, . _ - (starting with a letter or digit)'),
    file: z.string().min(1).optional(),
    env: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'expected an environment variable name, e.g. SEALRELAY_WEBHOOK_SECRET').optional(),
  })
  .strict()
  .refine((s) => (s.file === undefined) !== (s.env === undefined), 'give the secret as file or env (one of them)');

const endpoint = z
  .object({
    /** The endpoint's identity in the store (its cursor and deliveries) and on the command line: keep it when the URL changes. */
    name: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,63}$/, 'endpoint names are 1-64 lower-case letters, digits, _ and - (starting with a letter or digit)'),
    url: endpointUrl,
    /** The event types it is sent; default: every type. */
    events: z.array(z.enum(EVENT_TYPES, { error: `expected one of ${EVENT_TYPES.join(', ')}` })).min(1).optional(),
    /** Every secret signs each request (one v1 per secret), so a receiver holding either verifies while a secret is rotated. */
    secrets: z.array(webhookSecret).min(1, 'an endpoint needs at least one signing secret'),
    /** One request's deadline: connect, send, and the receiver's status line. */
    timeout_seconds: z.number().positive().max(300).default(10),
    /** Requests in flight to this endpoint at once (events of one message are always sent one after the other). */
    concurrency: z.number().int().min(1).max(64).default(4),
  })
  .strict()
  .superRefine((e, ctx) => {
    const ids = new Set<string>();
    e.secrets.forEach((s, i) => {
      if (ids.has(s.id)) ctx.addIssue({ code: 'custom', path: ['secrets', i, 'id'], message: `duplicate secret id ${s.id}` });
      ids.add(s.id);
    });
  });

export const webhooksSchema = z
  .object({
    endpoints: z.array(endpoint).default([]),
    /** How often the relay looks for new events and due retries, in ms. */
    poll_interval_ms: z.number().int().min(10).max(60_000).default(1000),
    retry: z
      .object({
        /** The first retry after this many seconds; each later one waits `factor` times longer (with jitter), up to max_seconds. */
        first_seconds: z.number().positive().default(30),
        max_seconds: z.number().positive().default(3600),
        factor: z.number().min(1).default(2),
        /** An event is given up (state failed, shown by `webhooks status`) only after this long without a 2xx. */
        give_up_hours: z.number().min(MIN_GIVE_UP_HOURS, `receivers get at least ${MIN_GIVE_UP_HOURS} hours`).default(MIN_GIVE_UP_HOURS),
      })
      .strict()
      .prefault({}),
    /** Delivered and failed deliveries are kept this long (for status and replay), in days. */
    keep_days: z.number().int().min(1).max(3650).default(14),
  })
  .strict()
  .superRefine((w, ctx) => {
    const names = new Set<string>();
    w.endpoints.forEach((e, i) => {
      if (names.has(e.name)) ctx.addIssue({ code: 'custom', path: ['endpoints', i, 'name'], message: `duplicate endpoint name ${e.name}` });
      names.add(e.name);
    });
  })
  .prefault({});

export type WebhooksConfig = z.infer<typeof webhooksSchema>;
export type WebhookEndpointConfig = WebhooksConfig['endpoints'][number];
