// Webhook signatures, the way the careful APIs (Stripe, Standard Webhooks) do it:
// HMAC-SHA256 over `<timestamp>.<body>`, sent in one header with the timestamp and,
// for every secret of the endpoint, its id and its signature:
//
//   SealRelay-Signature: t=1733256000,k=2026-12,v1=5f2c…,k=2027-06,v1=9ab0…
//
// Every configured secret signs, so during a rotation a receiver that holds either
// the old or the new secret verifies (add the new one, move the receiver, remove the
// old: no gap). The timestamp is signed too: a receiver rejects stale ones (a replayed
// capture), and the event id in the body is what it deduplicates on.
//
// A secret is text of at least 32 bytes (`sealrelay webhooks keygen` makes 32 random
// bytes as base64url), read from a file (mode 0600) or an environment variable, never
// from the YAML; the HMAC key is that text as UTF-8, surrounding whitespace trimmed.
// The bytes stay in a private field: logging or printing a signer never shows them.
// Like the rest of the relay this module never reads process.env: the CLI hands it the
// environment it captured.
import { createHmac, randomBytes } from 'node:crypto';
import { inspect } from 'node:util';
import type { Env } from '../../config/load.ts';
import { readSecretFile, readSecretVariable } from '../../config/secret-source.ts';
import type { WebhooksConfig } from '../../config/webhooks.ts';

export const SIGNATURE_HEADER = 'SealRelay-Signature';
export const EVENT_ID_HEADER = 'SealRelay-Event-Id';
/** Shortest secret accepted, in bytes: HMAC-SHA256's own block of entropy. */
export const MIN_SECRET_BYTES = 32;

/** A secret that cannot be read or is too short; `path` as the config loader places the setting. */
export class WebhookSecretError extends Error {
  constructor(
    readonly path: readonly (string | number)[],
    readonly setting: string,
    readonly reason: string,
  ) {
    super(`${setting}: ${reason}`);
    this.name = 'WebhookSecretError';
  }
}

/** A new secret: 32 random bytes as base64url (43 characters). */
export function generateWebhookSecret(): string {
  return randomBytes(32).toString('base64url');
}

/** The signature header of `body` sent at `unixSeconds`, one `k=…,v1=…` pair per secret. */
export function signatureHeader(secrets: readonly { readonly id: string; readonly key: Buffer }[], unixSeconds: number, body: string): string {
  const signed = `${unixSeconds}.${body}`;
  return [`t=${unixSeconds}`, ...secrets.map((s) => `k=${s.id},v1=${createHmac('sha256', s.key).update(signed).digest('hex')}`)].join(',');
}

/** The secrets of one endpoint, usable only to sign. */
export class WebhookSigner {
  readonly #secrets: readonly { readonly id: string; readonly key: Buffer }[];

  constructor(secrets: readonly { readonly id: string; readonly key: Buffer }[]) {
    this.#secrets = secrets.map((s) => ({ id: s.id, key: Buffer.from(s.key) }));
  }

  get ids(): string[] {
    return this.#secrets.map((s) => s.id);
  }

  sign(body: string, unixSeconds: number): string {
    return signatureHeader(this.#secrets, unixSeconds, body);
  }

  toJSON(): { ids: string[] } {
    return { ids: this.ids };
  }

  [inspect.custom](): string {
    return `WebhookSigner { ids: [${this.ids.join(', ')}] }`;
  }
}

/**
 * Reads every endpoint's secrets (files, and variables from `env`) and checks each;
 * throws a WebhookSecretError naming the first bad one. Keyed by endpoint name.
 */
export function loadWebhookSigners(webhooks: WebhooksConfig, env: Env): Map<string, WebhookSigner> {
  return new Map(webhooks.endpoints.map((e, i) => [e.name, new WebhookSigner(e.secrets.map((_, j) => readSecret(webhooks, i, j, env)))]));
}

/** Every secret that cannot be read or is too short (`config check` lists them all). */
export function webhookSecretProblems(webhooks: WebhooksConfig, env: Env): WebhookSecretError[] {
  const problems: WebhookSecretError[] = [];
  webhooks.endpoints.forEach((e, i) =>
    e.secrets.forEach((_, j) => {
      try {
        readSecret(webhooks, i, j, env);
      } catch (err) {
        if (!(err instanceof WebhookSecretError)) throw err;
        problems.push(err);
      }
    }),
  );
  return problems;
}

/** Secret `j` of endpoint `i`, read and checked. */
function readSecret(webhooks: WebhooksConfig, i: number, j: number, env: Env): { id: string; key: Buffer } {
  const e = webhooks.endpoints[i]!;
  const s = e.secrets[j]!;
  const field = s.file !== undefined ? 'file' : 'env';
  const fail = (reason: string) => new WebhookSecretError(['webhooks', 'endpoints', i, 'secrets', j, field], `webhooks.endpoints[${e.name}].secrets[${s.id}].${field}`, reason);
  const text = (s.file !== undefined ? readSecretFile(s.file, fail) : readSecretVariable(s.env!, env, fail)).trim();
  const bytes = Buffer.byteLength(text);
  // The length only: never the text.
  if (bytes < MIN_SECRET_BYTES) throw fail(`${s.file ?? s.env}: a secret needs at least ${MIN_SECRET_BYTES} bytes, this one has ${bytes} (sealrelay webhooks keygen makes one)`);
  return { id: s.id, key: Buffer.from(text) };
}


