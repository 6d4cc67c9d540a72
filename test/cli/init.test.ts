// `sealrelay init DIR --hostname NAME`: a commented config that passes `config
// check` as written, with new keys (mode 0600 in a 0700 directory) that it names;
// never overwriting; the next steps printed. Queued bodies are encrypted at rest from the start.
import { existsSync, mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { parse } from 'yaml';
import { runCli } from './harness.ts';

const mode = (path: string) => statSync(path).mode & 0o777;

it('writes a config that config check passes (every key tried), keys of mode 0600, the DKIM record and the next steps', async () => {
  const dir = join(mkdtempSync(join(tmpdir(), 'sealrelay-init-')), 'install');
  const res = await runCli(['init', dir, '--hostname', 'relay.clinic.test', '--dkim-domain', 'Clinic.Test']);
  expect(res.stderr).toBe('');
  expect(res.code).toBe(0);
  const configFile = join(dir, 'sealrelay.yaml');
  const text = readFileSync(configFile, 'utf8');
  // The template's comments stay: an operator reads what each setting does.
  expect(text).toContain('# Secure portal: messages stored encrypted at rest');
  expect(text.startsWith('# SealRelay configuration, written by `sealrelay init`')).toBe(true);
  const config = parse(text) as Record<string, Record<string, unknown>>;
  expect(config.server!.hostname).toBe('relay.clinic.test');
  const [master] = config.portal!.master_keys as { id: string; file: string }[];
  expect(config.portal!.current_key).toBe(master!.id);
  expect(config.dkim!.domains).toEqual({ 'clinic.test': { selector: 'sealrelay', key_file: 'keys/dkim-clinic.test.key' } });

  const encryption = config.store!.encryption as { keys: { id: string; file: string }[]; current_key: string };
  expect(encryption.current_key).toBe(encryption.keys[0]!.id);

  expect(mode(join(dir, 'keys'))).toBe(0o700);
  for (const key of [master!.file, encryption.keys[0]!.file, 'keys/evidence.key', 'keys/dkim-clinic.test.key']) expect(mode(join(dir, key))).toBe(0o600);
  expect(res.stdout).toMatch(/publish the DKIM key: {2}sealrelay\._domainkey\.clinic\.test\. IN TXT "v=DKIM1; k=rsa; p=[A-Za-z0-9+/=]+"/);
  expect(res.stdout).toContain(`sealrelay -c ${configFile} config check`);

  const check = await runCli(['-c', configFile, 'config', 'check']);
  expect(check.stderr).toBe('');
  expect(check.stdout).toBe(`OK: ${configFile}\n`);
});

it('never overwrites: a directory with a config is refused and nothing in it changes; a bad hostname or domain writes nothing', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sealrelay-init-'));
  expect((await runCli(['init', dir, '--hostname', 'relay.clinic.test'])).code).toBe(0);
  const before = readFileSync(join(dir, 'sealrelay.yaml'), 'utf8');
  const keyBefore = readFileSync(join(dir, 'keys', 'evidence.key'), 'utf8');
  const again = await runCli(['init', dir, '--hostname', 'other.clinic.test']);
  expect(again.code).toBe(1);
  expect(again.stderr).toContain('exists; init never overwrites');
  expect(readFileSync(join(dir, 'sealrelay.yaml'), 'utf8')).toBe(before);
  expect(readFileSync(join(dir, 'keys', 'evidence.key'), 'utf8')).toBe(keyBefore);

  const fresh = join(mkdtempSync(join(tmpdir(), 'sealrelay-init-')), 'x');
  expect((await runCli(['init', fresh, '--hostname', 'not a host'])).code).toBe(64);
  const badDomain = await runCli(['init', fresh, '--hostname', 'relay.clinic.test', '--dkim-domain', 'no_such..domain']);
  expect(badDomain.code).toBe(64);
  expect(existsSync(fresh)).toBe(false);
});
