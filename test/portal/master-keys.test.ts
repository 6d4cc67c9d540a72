// Portal master keys (src/portal/master-keys.ts and the `portal:` config section):
// given by file (mode 0600, path relative to the config file) or by environment
// variable name, never by value; the current key named explicitly; every bad key is
// an error naming its setting, and none echoes what it read.
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { ConfigError, parseConfig, parseConfigFile } from '../../src/config/load.ts';
import { formatMasterKey, generateMasterKey, loadKeyring, MasterKeyError, parseMasterKey } from '../../src/portal/master-keys.ts';

const base = 'ingress:\n  listeners:\n    starttls:\n      port: 2525\n';
let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'sealrelay-portal-keys-'));
});

/** A key file as `portal keygen` writes it. */
function keyFile(name: string, mode = 0o600): { path: string; key: Buffer } {
  const key = generateMasterKey();
  const path = join(dir, name);
  writeFileSync(path, formatMasterKey(key), { mode });
  chmodSync(path, mode);
  return { path, key };
}

function portalOf(yaml: string, env = {}) {
  return parseConfig(`${base}${yaml}`, join(dir, 'sealrelay.yaml'), env).portal;
}

function problemsOf(yaml: string) {
  try {
    parseConfigFile(`${base}${yaml}`, join(dir, 'sealrelay.yaml'));
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems.map((p) => `${p.line}: ${p.key}: ${p.message}`);
  }
  throw new Error('expected a ConfigError');
}

describe('the text form', () => {
  it('is one line of base64 of 32 bytes; anything else is refused without being echoed', () => {
    const key = generateMasterKey();
    const text = formatMasterKey(key);
    expect(text).toMatch(/^[A-Za-z0-9+/]{43}=\n$/);
    expect(parseMasterKey(text).equals(key)).toBe(true);
    expect(parseMasterKey(`  ${text.trim()}\r\n`).equals(key)).toBe(true);
    const secretish = 'hunter2-my-password-is-not-a-key';
    expect(() => parseMasterKey(secretish)).toThrow(/not a master key: expected 32 bytes in base64/);
    expect(() => parseMasterKey(secretish)).not.toThrow(new RegExp(secretish));
    expect(() => parseMasterKey(key.subarray(0, 16).toString('base64'))).toThrow(/found 24 characters/);
    expect(() => parseMasterKey('\n')).toThrow(/empty/);
  });
});

describe('loadKeyring', () => {
  it('reads keys from files (relative to the config) and from the environment; the current one is named', () => {
    const a = keyFile('a.key');
    const b = generateMasterKey();
    const portal = portalOf(
      `portal:\n  master_keys:\n    - { id: old, file: a.key }\n    - { id: new, env: PORTAL_KEY_NEW }\n  current_key: new\n`,
    );
    expect(portal.master_keys[0]?.file).toBe(a.path);
    const ring = loadKeyring(portal, { PORTAL_KEY_NEW: formatMasterKey(b) })!;
    expect(ring.currentId).toBe('new');
    expect(ring.ids).toEqual(['old', 'new']);
  });

  it('none configured: null; the section defaults to no keys and a five-minute sweep', () => {
    const portal = portalOf('');
    expect(portal).toMatchObject({ master_keys: [], current_key: null, expiry_sweep_seconds: 300 });
    expect(loadKeyring(portal, {})).toBeNull();
  });

  it('refuses a key file that group or others may read, a missing file, an unset variable and a malformed key, naming the setting', () => {
    keyFile('open.key', 0o644);
    keyFile('group.key', 0o640);
    const fail = (yaml: string, env: Record<string, string> = {}) => {
      try {
        loadKeyring(portalOf(yaml), env);
      } catch (err) {
        expect(err).toBeInstanceOf(MasterKeyError);
        return (err as MasterKeyError).message;
      }
      throw new Error('expected a MasterKeyError');
    };
    const one = (source: string) => `portal:\n  master_keys:\n    - { id: k1, ${source} }\n  current_key: k1\n`;
    expect(fail(one('file: open.key'))).toMatch(/^portal\.master_keys\[k1\]\.file: .*open\.key: mode 0644 lets group or others read it; chmod 600/);
    expect(fail(one('file: group.key'))).toMatch(/mode 0640 lets group or others read it/);
    expect(fail(one('file: missing.key'))).toMatch(/^portal\.master_keys\[k1\]\.file: .*missing\.key: no such file$/);
    expect(fail(one('env: PORTAL_KEY'))).toBe('portal.master_keys[k1].env: environment variable PORTAL_KEY is not set');
    expect(fail(one('env: PORTAL_KEY'), { PORTAL_KEY: 'c2VjcmV0' })).toMatch(/^portal\.master_keys\[k1\]\.env: PORTAL_KEY: not a master key/);
    expect(fail(one('env: PORTAL_KEY'), { PORTAL_KEY: 'c2VjcmV0' })).not.toContain('c2VjcmV0');
  });
});

describe('the portal config section', () => {
  it('takes a key by file or by env (one of them), never by value, with unique ids and a named current key', () => {
    expect(problemsOf('portal:\n  master_keys:\n    - { id: k1, key: abc }\n  current_key: k1\n')).toContain('7: portal.master_keys[k1].key: unknown key');
    expect(problemsOf('portal:\n  master_keys:\n    - { id: k1, file: a.key, env: X }\n  current_key: k1\n')).toEqual(['7: portal.master_keys[k1]: give the key as file or env (one of them)']);
    expect(problemsOf('portal:\n  master_keys:\n    - { id: k1 }\n  current_key: k1\n')).toEqual(['7: portal.master_keys[k1]: give the key as file or env (one of them)']);
    expect(problemsOf('portal:\n  master_keys:\n    - { id: k1, file: a.key }\n    - { id: k1, file: b.key }\n  current_key: k1\n')).toEqual(['8: portal.master_keys[k1].id: duplicate master key id k1']);
    expect(problemsOf('portal:\n  master_keys:\n    - { id: k1, env: not-a-name }\n  current_key: k1\n')[0]).toMatch(/portal\.master_keys\[k1\]\.env: expected an environment variable name/);
  });

  it('the current key is never guessed: required once there is a key, and must be one of them', () => {
    expect(problemsOf('portal:\n  master_keys:\n    - { id: k1, file: a.key }\n')).toEqual(['5: portal.current_key: name the master key new items use (one of the master_keys ids)']);
    expect(problemsOf('portal:\n  master_keys:\n    - { id: k1, file: a.key }\n  current_key: k2\n')).toEqual(['8: portal.current_key: no master key with id k2 in portal.master_keys']);
    expect(problemsOf('portal:\n  current_key: k2\n')).toEqual(['6: portal.current_key: no master key with id k2 in portal.master_keys']);
  });
});
