// `sealrelay webhooks status | replay | keygen` as an operator runs them, on a store
// seeded in-process: status shows each endpoint's backlog, failures and last error and
// the failing deliveries; replay requeues what was sent since a time (and only for the
// endpoint named); bad arguments exit 64 and change nothing; `config check` tries the
// secrets and never prints one.
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { HOUR, lines, makeSandbox, message, runCli, withStore, type Sandbox } from './harness.ts';

const SECRET = 'cli-test-secret-0123456789abcdefghijklmn';

const sandboxes: Sandbox[] = [];
afterEach(() => {
  for (const s of sandboxes.splice(0)) s.cleanup();
});

function sandbox(): Sandbox {
  const s = makeSandbox(
    [
      'webhooks:',
      '  endpoints:',
      '    - name: crm',
      '      url: https://crm.clinic.example/hooks',
      '      secrets: [{ id: k1, env: HOOK_CRM }]',
      '    - name: billing',
      '      url: https://billing.clinic.example/hooks',
      '      events: [delivered]',
      '      secrets: [{ id: k1, env: HOOK_BILLING }]',
    ].join('\n'),
  );
  sandboxes.push(s);
  return s;
}

/** crm: one event delivered, one failing (HTTP 500), one given up; billing: nothing; "old": an endpoint no longer configured, one pending. */
async function seed(s: Sandbox, now = Date.now()): Promise<void> {
  await withStore(s.storePath, async (store) => {
    for (const endpoint of ['crm', 'billing', 'old']) await store.copyWebhookEvents(endpoint, null, 100, now);
    for (const [id, rcpt] of [['Q1', 'a@one.example'], ['Q2', 'b@one.example'], ['Q3', 'c@one.example']] as const) {
      await store.enqueue(message(id, [rcpt], now - HOUR));
    }
    await store.copyWebhookEvents('crm', null, 100, now);
    await store.copyWebhookEvents('billing', ['delivered'], 100, now);
    await store.copyWebhookEvents('old', null, 100, now);
    const [a, b, c] = await store.claimWebhookDeliveries('crm', 10, 60_000, now);
    await store.settleWebhookDeliveries([
      { endpoint: 'crm', eventId: a!.eventId, at: now, delivered: true, status: 200 },
      { endpoint: 'crm', eventId: b!.eventId, at: now, delivered: false, status: 500, error: 'HTTP 500', nextAt: now + HOUR },
      { endpoint: 'crm', eventId: c!.eventId, at: now, delivered: false, status: null, error: 'connection refused', nextAt: null },
    ]);
  });
}

describe('webhooks status', () => {
  it('shows each endpoint’s backlog, failures, totals and last error, then the failing deliveries', async () => {
    const s = sandbox();
    await seed(s);
    const r = await runCli(['-c', s.configFile, 'webhooks', 'status']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const out = lines(r.stdout);
    expect(out[0]).toMatch(/^ENDPOINT\s+BACKLOG\s+OLDEST\s+FAILED\s+DELIVERED\s+LAST OK\s+LAST ERROR$/);
    expect(out.find((l) => l.startsWith('billing '))).toMatch(/^billing\s+0\s+-\s+0\s+0\s+-\s+-$/);
    expect(out.find((l) => l.startsWith('crm '))).toMatch(/^crm\s+1\s+\d+s\s+1\s+1\s+(now|\ds ago)\s+connection refused \((now|\ds ago)\)$/);
    expect(out.find((l) => l.startsWith('old '))).toMatch(/^old \(removed\)\s+3\s+/);
    const failing = out.slice(out.findIndex((l) => l.startsWith('ENDPOINT  EVENT')));
    expect(failing).toHaveLength(3);
    expect(failing.find((l) => l.includes('HTTP 500'))).toMatch(/crm\s+[0-9a-f]{32}\s+queued\s+Q2\s+retrying\s+1\s+in (59|60)m\s+HTTP 500/);
    expect(failing.find((l) => l.includes('connection refused'))).toMatch(/crm\s+[0-9a-f]{32}\s+queued\s+Q3\s+failed\s+1\s+-\s+connection refused/);
  });

  it('as JSON, for one endpoint', async () => {
    const s = sandbox();
    await seed(s);
    const r = await runCli(['-c', s.configFile, 'webhooks', 'status', '--json', '--endpoint', 'crm']);
    expect(r.code).toBe(0);
    const json = JSON.parse(r.stdout) as { endpoints: Record<string, unknown>[]; failing: Record<string, unknown>[] };
    expect(json.endpoints).toEqual([
      expect.objectContaining({ endpoint: 'crm', configured: true, backlog: 1, failed: 1, deliveredTotal: 1, failedAttemptsTotal: 2, gaveUpTotal: 1, lastError: 'connection refused', lastStatus: null }),
    ]);
    expect(json.failing.map((f) => [f.queueId, f.state])).toEqual(expect.arrayContaining([['Q2', 'pending'], ['Q3', 'failed']]));
    expect(r.stdout).not.toContain('"body"');
  });

  it('says so when no endpoint is configured, and refuses a malformed --endpoint with 64', async () => {
    const s = makeSandbox();
    sandboxes.push(s);
    await withStore(s.storePath, async () => undefined);
    const none = await runCli(['-c', s.configFile, 'webhooks', 'status']);
    expect([none.code, none.stdout.trim()]).toEqual([0, 'no webhook endpoints configured (webhooks.endpoints)']);
    const bad = await runCli(['-c', s.configFile, 'webhooks', 'status', '--endpoint', '<script>'.repeat(20)]);
    expect(bad.code).toBe(64);
    expect(bad.stderr).toMatch(/^sealrelay: --endpoint: "<script>.*…" is not an endpoint name\n$/);
    const unknown = await runCli(['-c', s.configFile, 'webhooks', 'status', '--endpoint', 'crm']);
    expect([unknown.code, unknown.stderr]).toEqual([64, 'sealrelay: --endpoint: no webhook endpoint "crm" in the config or the store\n']);
  });
});

describe('webhooks replay', () => {
  it('requeues the delivered and given-up deliveries of one endpoint since a time; the relay sends them at its next turn', async () => {
    const s = sandbox();
    await seed(s);
    const r = await runCli(['-c', s.configFile, 'webhooks', 'replay', '--since', '2h', '--endpoint', 'crm']);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toMatch(/^crm: 2 event\(s\) since \S+Z queued again \(2 sent before, 0 never sent\)$/);
    expect(r.stderr).toContain('"event":"webhooks.replayed"');
    await withStore(s.storePath, async (store) => {
      const status = await store.webhookStatus();
      expect(status.find((e) => e.endpoint === 'crm')).toMatchObject({ pending: 3, failed: 0 });
      // The other endpoints are untouched.
      expect(status.find((e) => e.endpoint === 'old')).toMatchObject({ pending: 3 });
      expect(status.find((e) => e.endpoint === 'billing')).toMatchObject({ pending: 0 });
      expect((await store.listAudit({ action: 'webhooks.replay', limit: 10 })).map((e) => [e.actorKind, e.target])).toEqual([['os-user', 'crm']]);
    });
  });

  it('with no --endpoint, replays every configured endpoint; a window after the events changes nothing', async () => {
    const s = sandbox();
    await seed(s);
    const later = await runCli(['-c', s.configFile, 'webhooks', 'replay', '--since', new Date(Date.now() + HOUR).toISOString()]);
    expect(later.code).toBe(0);
    expect(lines(later.stdout)).toEqual([expect.stringMatching(/^crm: 0 event/), expect.stringMatching(/^billing: 0 event/)]);
    const all = await runCli(['-c', s.configFile, 'webhooks', 'replay', '--since', '1d']);
    expect(lines(all.stdout)).toEqual([expect.stringMatching(/^crm: 2 event/), expect.stringMatching(/^billing: 0 event/)]);
  });

  it('refuses a bad --since, an unknown endpoint and a missing --since with 64, changing nothing', async () => {
    const s = sandbox();
    await seed(s);
    const cases = [
      [['--since', 'yesterday'], /--since.*expected a duration like 30m/],
      [['--since', '1h', '--endpoint', 'old'], /no webhook endpoint "old" in the config \(configured: crm, billing\)/],
      [[], /required option '--since <when>' not specified/],
    ] as const;
    for (const [args, message] of cases) {
      const r = await runCli(['-c', s.configFile, 'webhooks', 'replay', ...args]);
      expect(r.code).toBe(64);
      expect(r.stderr).toMatch(message);
      expect(r.stdout).toBe('');
    }
    await withStore(s.storePath, async (store) => {
      expect((await store.webhookStatus()).find((e) => e.endpoint === 'crm')).toMatchObject({ pending: 1, failed: 1 });
    });
  });
});

describe('webhooks keygen and config check', () => {
  it('makes a 32-byte secret', async () => {
    const r = await runCli(['webhooks', 'keygen']);
    expect(r.code).toBe(0);
    expect(Buffer.from(r.stdout.trim(), 'base64url')).toHaveLength(32);
    expect(r.stdout.trim()).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });

  it('config check reads the secrets as start would and never prints one', async () => {
    const s = sandbox();
    const ok = await runCli(['-c', s.configFile, 'config', 'check', '--dev-cert'], { env: { HOOK_CRM: SECRET, HOOK_BILLING: SECRET } });
    expect(ok.stderr).toBe('');
    expect(ok.code).toBe(0);
    const short = 'too-short-but-still-secret';
    const bad = await runCli(['-c', s.configFile, 'config', 'check', '--dev-cert'], { env: { HOOK_CRM: short } });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/sealrelay\.yaml:\d+:\d+: webhooks\.endpoints\[crm\]\.secrets\[k1\]\.env: HOOK_CRM: a secret needs at least 32 bytes, this one has 26/);
    expect(bad.stderr).toMatch(/sealrelay\.yaml:\d+:\d+: webhooks\.endpoints\[billing\]\.secrets\[k1\]\.env: environment variable HOOK_BILLING is not set/);
    expect(bad.stderr).not.toContain(short);
  });

  it('config check refuses a secret file others may read', async () => {
    const s = makeSandbox(['webhooks:', '  endpoints:', '    - name: crm', '      url: https://crm.clinic.example/hooks', '      secrets: [{ id: k1, file: hook.secret }]'].join('\n'));
    sandboxes.push(s);
    const file = join(s.dir, 'hook.secret');
    writeFileSync(file, SECRET);
    chmodSync(file, 0o644);
    const r = await runCli(['-c', s.configFile, 'config', 'check', '--dev-cert']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`webhooks.endpoints[crm].secrets[k1].file: ${file}: mode 0644 lets group or others read it; chmod 600 ${file}`);
    expect(r.stderr).not.toContain(SECRET);
  });
});
