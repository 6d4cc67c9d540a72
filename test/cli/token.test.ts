// `sealrelay token`: a token is printed once and stored only as a hash that the
// API accepts; list never shows a secret; revoke refuses it from then on; bad
// names, scopes and expiries exit 64 and store nothing.
import { existsSync, readFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { makeApiToken, parseApiToken, secretMatches } from '../../src/http/api/tokens.ts';
import { makeSandbox, runCli, withStore, DAY, type Sandbox } from './harness.ts';

let box: Sandbox;
beforeEach(() => {
  box = makeSandbox();
});
afterEach(() => box.cleanup());

/** Several CLI runs in one test, on a shared, busy machine. */
const CLI_TEST_MS = 120_000;

const token = (args: string[]) => runCli(['-c', box.configFile, 'token', ...args]);

describe('sealrelay token', () => {
  it('add prints the token alone on stdout, stores its hash (never the secret), with scopes and expiry', async () => {
    const before = Date.now();
    const res = await token(['add', 'lab-app', '--scope', 'send,read', '--expires', '90d']);
    expect(res.code).toBe(0);
    const shown = res.stdout.trim();
    expect(res.stdout).toBe(`${shown}\n`);
    const parsed = parseApiToken(shown);
    expect(parsed).not.toBeNull();
    // 256 bits of secret.
    expect(Buffer.from(parsed!.secret, 'base64url').length).toBe(32);
    expect(res.stderr).toContain('shown only now');
    expect(res.stderr).not.toContain(parsed!.secret);
    const stored = await withStore(box.storePath, (s) => s.findApiToken(parsed!.id));
    expect(stored).toMatchObject({ name: 'lab-app', scopes: ['send', 'read'], revokedAt: null, lastUsedAt: null });
    expect(stored!.expiresAt! - stored!.createdAt).toBe(90 * DAY);
    expect(stored!.createdAt).toBeGreaterThanOrEqual(before);
    expect(secretMatches(stored!, parsed!.secret)).toBe(true);
    // One character changed (the last, to one it is not): refused.
    const last = parsed!.secret.at(-1) === 'A' ? 'B' : 'A';
    expect(secretMatches(stored!, `${parsed!.secret.slice(0, -1)}${last}`)).toBe(false);
    for (const file of [box.storePath, `${box.storePath}-wal`]) {
      if (existsSync(file)) expect(readFileSync(file).includes(Buffer.from(parsed!.secret)), file).toBe(false);
    }
  }, CLI_TEST_MS);

  it('list shows every token without secrets; revoke marks one and refuses a second revoke', async () => {
    const a = (await token(['add', 'alpha', '--scope', 'admin'])).stdout.trim();
    await withStore(box.storePath, (s) => s.createApiToken(makeApiToken({ name: 'beta', scopes: ['read'], now: Date.now(), expiresAt: null }).record));
    const list = await token(['list']);
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(/^NAME\s+ID\s+SCOPES\s+CREATED\s+EXPIRES\s+LAST USED\s+STATE/);
    expect(list.stdout).toMatch(/alpha\s+[0-9a-f]{16}\s+admin\s+\S+\s+never\s+never\s+active/);
    expect(list.stdout).not.toContain(parseApiToken(a)!.secret);
    expect((await token(['revoke', 'alpha'])).stdout).toBe('revoked API token alpha\n');
    const again = await token(['revoke', 'alpha']);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('no live API token named alpha');
    const json = (await token(['list', '--json'])).stdout.trim().split('\n').map((l) => JSON.parse(l));
    expect(json.map((t) => [t.name, t.revokedAt === null])).toEqual(expect.arrayContaining([['alpha', false], ['beta', true]]));
    expect(JSON.stringify(json)).not.toMatch(/secret|hash/i);
    // A revoked name may be used again; a live one may not.
    expect((await token(['add', 'alpha', '--scope', 'send'])).code).toBe(0);
    const dup = await token(['add', 'beta', '--scope', 'send']);
    expect(dup.code).toBe(1);
    expect(dup.stderr).toContain('beta exists');
  }, CLI_TEST_MS);

  it('bad names, scopes and expiries exit 64 and store nothing', async () => {
    for (const args of [
      ['add', 'Bad Name', '--scope', 'send'],
      ['add', 'app', '--scope', 'send,root'],
      ['add', 'app', '--scope', ''],
      ['add', 'app'],
      ['add', 'app', '--scope', 'send', '--expires', 'soon'],
      ['add', 'app', '--scope', 'send', '--expires', '0d'],
    ]) {
      const res = await token(args);
      expect(res.code, args.join(' ')).toBe(64);
      expect(res.stdout, args.join(' ')).toBe('');
    }
    const list = await token(['list']);
    // Nothing was made (the store may not even exist yet).
    expect(list.stdout + list.stderr).not.toContain('app ');
  }, CLI_TEST_MS);
});
