// Signing and its settings: the header holds up against the test's own node:crypto
// HMAC; every secret signs (rotation); secrets come from a 0600 file or the environment,
// at least 32 bytes, and are never echoed; the config refuses plain http off this
// machine, unknown event types, a give-up time under 72 hours and duplicate names.
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { webhooksSchema } from '../../../src/config/webhooks.ts';
import { generateWebhookSecret, loadWebhookSigners, WebhookSecretError, WebhookSigner } from '../../../src/events/webhooks/signing.ts';
import { backoffMs } from '../../../src/events/webhooks/dispatcher.ts';
import { independentlyVerified } from './receiver.ts';

const SECRET_A = 'a'.repeat(20) + 'A-secret-of-32-bytes-plus';
const SECRET_B = generateWebhookSecret();

function webhooks(endpoints: unknown[], extra: Record<string, unknown> = {}) {
  return webhooksSchema.safeParse({ endpoints, ...extra });
}

const endpoint = (over: Record<string, unknown> = {}) => ({ name: 'crm', url: 'https://crm.example/hook', secrets: [{ id: 'k1', env: 'HOOK_K1' }], ...over });

describe('signature header', () => {
  it('is HMAC-SHA256 over "t.body" for every secret, checked by an independent implementation', () => {
    const signer = new WebhookSigner([
      { id: 'old', key: Buffer.from(SECRET_A) },
      { id: 'new', key: Buffer.from(SECRET_B) },
    ]);
    const body = JSON.stringify({ id: 'x', type: 'delivered', note: 'ünïcode ✓' });
    const header = signer.sign(body, 1_733_256_000);
    expect(header).toMatch(/^t=1733256000,k=old,v1=[0-9a-f]{64},k=new,v1=[0-9a-f]{64}$/);
    for (const secret of [SECRET_A, SECRET_B]) {
      const check = independentlyVerified({ headers: { 'sealrelay-signature': header }, body }, secret);
      expect(check).toEqual({ t: 1_733_256_000, keyIds: ['old', 'new'], ok: true });
    }
    expect(independentlyVerified({ headers: { 'sealrelay-signature': header }, body: `${body} ` }, SECRET_A).ok).toBe(false);
    expect(independentlyVerified({ headers: { 'sealrelay-signature': header }, body }, generateWebhookSecret()).ok).toBe(false);
    // The timestamp is signed too: a header moved to another time fails.
    expect(independentlyVerified({ headers: { 'sealrelay-signature': header.replace('t=1733256000', 't=1733256001') }, body }, SECRET_A).ok).toBe(false);
  });

  it('never shows the secrets when printed or logged', () => {
    const signer = new WebhookSigner([{ id: 'k1', key: Buffer.from(SECRET_A) }]);
    expect(inspect(signer)).not.toContain(SECRET_A);
    expect(JSON.stringify({ signer })).not.toContain(SECRET_A);
    expect(`${inspect(signer)} ${JSON.stringify(signer)}`).toContain('k1');
  });

  it('makes new secrets of 32 random bytes', () => {
    const a = generateWebhookSecret();
    expect(a).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(Buffer.from(a, 'base64url')).toHaveLength(32);
    expect(generateWebhookSecret()).not.toBe(a);
  });
});

describe('secrets', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sealrelay-hook-secrets-'));
  const file = (name: string, text: string, mode = 0o600) => {
    const path = join(dir, name);
    writeFileSync(path, text);
    chmodSync(path, mode);
    return path;
  };
  const load = (secrets: unknown[], env: Record<string, string> = {}) => {
    const parsed = webhooks([endpoint({ secrets })]);
    if (!parsed.success) throw new Error(parsed.error.message);
    return loadWebhookSigners(parsed.data, env);
  };
  const failure = (fn: () => unknown): WebhookSecretError => {
    try {
      fn();
    } catch (err) {
      if (err instanceof WebhookSecretError) return err;
      throw err;
    }
    throw new Error('no error');
  };

  it('reads a file (trailing newline trimmed) and a variable, in the configured order', () => {
    const signers = load([{ id: 'f', file: file('ok', `${SECRET_A}\n`) }, { id: 'e', env: 'HOOK_E' }], { HOOK_E: SECRET_B });
    const signer = signers.get('crm')!;
    expect(signer.ids).toEqual(['f', 'e']);
    const header = signer.sign('{}', 1);
    expect(independentlyVerified({ headers: { 'sealrelay-signature': header }, body: '{}' }, SECRET_A).ok).toBe(true);
    expect(independentlyVerified({ headers: { 'sealrelay-signature': header }, body: '{}' }, SECRET_B).ok).toBe(true);
  });

  it('refuses a short secret, naming the setting and the length but never the text', () => {
    const short = 'short-but-secret-31-bytes-long!';
    const err = failure(() => load([{ id: 'k1', env: 'HOOK_K1' }], { HOOK_K1: short }));
    expect(err.setting).toBe('webhooks.endpoints[crm].secrets[k1].env');
    expect(err.path).toEqual(['webhooks', 'endpoints', 0, 'secrets', 0, 'env']);
    expect(err.reason).toContain('at least 32 bytes, this one has 31');
    expect(err.message).not.toContain(short);
  });

  it('refuses a file group or others may read, a missing file and an unset variable', () => {
    expect(failure(() => load([{ id: 'k1', file: file('open', SECRET_A, 0o644) }])).reason).toMatch(/mode 0644 .*chmod 600/);
    expect(failure(() => load([{ id: 'k1', file: join(dir, 'absent') }])).reason).toMatch(/no such file/);
    expect(failure(() => load([{ id: 'k1', env: 'HOOK_K1' }])).reason).toBe('environment variable HOOK_K1 is not set');
  });
});

describe('config', () => {
  const problems = (r: ReturnType<typeof webhooks>) => (r.success ? [] : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`));

  it('takes https anywhere and plain http only to this machine', () => {
    expect(problems(webhooks([endpoint({ url: 'http://127.0.0.1:8080/h' })]))).toEqual([]);
    expect(problems(webhooks([endpoint({ url: 'http://[::1]:8080/h' })]))).toEqual([]);
    expect(problems(webhooks([endpoint({ url: 'http://crm.example/h' })]))[0]).toMatch(/^endpoints.0.url: expected an https:\/\/ URL/);
    expect(problems(webhooks([endpoint({ url: 'https://user:pw@crm.example/h' })]))[0]).toMatch(/no user or password/);
    expect(problems(webhooks([endpoint({ url: 'ftp://crm.example/h' })]))).toHaveLength(1);
  });

  it('checks event types against the event model, and defaults to all', () => {
    expect(problems(webhooks([endpoint({ events: ['delivered', 'opend'] })]))[0]).toMatch(/^endpoints.0.events.1: expected one of queued, delivered/);
    const ok = webhooks([endpoint()]);
    expect(ok.success && ok.data.endpoints[0]!.events).toBeUndefined();
  });

  it('gives receivers at least 72 hours, and refuses duplicate names and secret ids', () => {
    expect(problems(webhooks([endpoint()], { retry: { give_up_hours: 36 } }))[0]).toMatch(/^retry.give_up_hours: receivers get at least 72 hours/);
    expect(problems(webhooks([endpoint(), endpoint()]))[0]).toMatch(/^endpoints.1.name: duplicate endpoint name crm/);
    expect(problems(webhooks([endpoint({ secrets: [{ id: 'a', env: 'X' }, { id: 'a', env: 'Y' }] })]))[0]).toMatch(/duplicate secret id a/);
    expect(problems(webhooks([endpoint({ secrets: [] })]))[0]).toMatch(/at least one signing secret/);
    expect(problems(webhooks([endpoint({ secrets: [{ id: 'a', env: 'X', file: '/f' }] })]))[0]).toMatch(/file or env/);
  });
});

describe('backoff', () => {
  const retry = { first_seconds: 30, max_seconds: 3600, factor: 2, give_up_hours: 72 };
  it('doubles from first_seconds up to max_seconds, jittered within the upper half', () => {
    expect([1, 2, 3, 8, 20].map((n) => backoffMs(n, retry, () => 0.999999) / 1000).map(Math.round)).toEqual([30, 60, 120, 3600, 3600]);
    expect([1, 2, 3, 8].map((n) => backoffMs(n, retry, () => 0) / 1000)).toEqual([15, 30, 60, 1800]);
  });
});
