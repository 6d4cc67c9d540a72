// `sealrelay config show [-n]`: the effective configuration as YAML (defaults filled
// in, environment overrides applied and named), or only what is set (postconf -n);
// anything that looks like a secret is masked.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { MASK, maskSecrets } from '../../src/cli/config-show.ts';
import { makeSandbox, runCli, type Sandbox } from './harness.ts';

let box: Sandbox;
beforeEach(() => {
  box = makeSandbox();
});
afterEach(() => box.cleanup());

describe('sealrelay config show', () => {
  it('prints every setting with its default, as YAML that parses back to the same values', async () => {
    const res = await runCli(['-c', box.configFile, 'config', 'show']);
    expect(res.code).toBe(0);
    const shown = parse(res.stdout) as Record<string, Record<string, unknown>>;
    expect(shown.store!.path).toBe(box.storePath);
    expect(shown.reports).toEqual({ campaign_header: 'X-Campaign-ID', custom_header: null });
    expect((shown.delivery!.retry as Record<string, unknown>).lifetime_seconds).toEqual(expect.any(Number));
    expect(res.stdout.startsWith(`# SealRelay configuration from ${box.configFile} (defaults filled in)`)).toBe(true);
  });

  it('-n prints only what the file sets; a setting from the environment says which variable set it', async () => {
    const res = await runCli(['-c', box.configFile, 'config', 'show', '-n'], { env: { SEALRELAY_HOSTNAME: 'relay.from-env.test' } });
    expect(res.code).toBe(0);
    const shown = parse(res.stdout) as Record<string, unknown>;
    expect(Object.keys(shown).sort()).toEqual(['ingress', 'server', 'store']);
    expect(shown.server).toEqual({ hostname: 'relay.from-env.test' });
    expect(res.stdout).toMatch(/hostname: relay\.from-env\.test # from SEALRELAY_HOSTNAME\n/);
  });

  it('a config with problems is refused as by every command: file, line and key, exit 78', async () => {
    const { writeFileSync } = await import('node:fs');
    writeFileSync(box.configFile, 'store:\n  path: x.db\n  colour: blue\n');
    const res = await runCli(['-c', box.configFile, 'config', 'show']);
    expect(res.code).toBe(78);
    expect(res.stderr).toContain(`${box.configFile}:3:3: store.colour: unknown key`);
    expect(res.stdout).toBe('');
  });
});

describe('maskSecrets', () => {
  it('masks inline secrets and URL passwords; leaves references to secrets (variables, files) and everything else', () => {
    const config = {
      webhooks: { endpoints: [{ url: 'https://hook:pa55@example.test/in', secrets: [{ id: 'k1', secret: 'inline-value', secret_env: 'HOOK_SECRET' }] }] },
      portal: { master_keys: [{ id: 'k', file: '/etc/sealrelay/k.key' }], public_url: 'https://portal.example.test/' },
      api: { token: 'sr_abc', smtp_password: 'pw', passphrase: '' },
    };
    expect(maskSecrets(config)).toEqual({
      webhooks: { endpoints: [{ url: `https://hook:${MASK}@example.test/in`, secrets: [{ id: 'k1', secret: MASK, secret_env: 'HOOK_SECRET' }] }] },
      portal: { master_keys: [{ id: 'k', file: '/etc/sealrelay/k.key' }], public_url: 'https://portal.example.test/' },
      api: { token: MASK, smtp_password: MASK, passphrase: '' },
    });
  });
});
