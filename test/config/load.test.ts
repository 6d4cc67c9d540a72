import { describe, expect, it } from 'vitest';
import { parseDocument } from 'yaml';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { ConfigError, loadConfig, parseConfig, parseConfigFile, PATH_SETTINGS } from '../../src/config/load.ts';
import { configSchema } from '../../src/config/schema.ts';

const base = 'ingress:\n  listeners:\n    starttls:\n      port: 2525\n';

function problemsOf(text: string, env = {}) {
  try {
    parseConfig(text, 'test.yaml', env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems;
  }
  throw new Error('expected a ConfigError');
}

describe('config loading', () => {
  it('the shipped config/sealrelay.yaml is valid and names every setting of the schema', () => {
    const config = loadConfig('config/sealrelay.yaml');
    expect(config.ingress.listeners.starttls?.port).toBe(2525);
    expect(config.ingress.listeners.submission?.tls).toBe('required');
    // Every leaf of the defaults must appear in the example so it documents everything.
    const text = readFileSync('config/sealrelay.yaml', 'utf8');
    const doc = parseDocument(text).toJS() as Record<string, unknown>;
    const leaves = (o: unknown, path: string[] = []): string[] =>
      o && typeof o === 'object' && !Array.isArray(o) && Object.keys(o).length
        ? Object.entries(o).flatMap(([k, v]) => leaves(v, [...path, k]))
        : [path.join('.')];
    const expected = leaves(configSchema.parse({ ingress: { listeners: {} } })).filter((k) => !k.startsWith('ingress.listeners'));
    const present = new Set(leaves(doc));
    const missing = expected.filter((k) => !present.has(k) && !present.has(k.split('.').slice(0, -1).join('.')));
    expect(missing).toEqual([]);
    // …and every key line is explained by a comment on it or just above it (or is inside a documented block).
    const lines = text.split('\n');
    const undocumented = lines
      .map((line, i) => ({ line, i }))
      .filter(({ line }) => /^\s*[a-z_]+:/.test(line))
      .filter(({ line, i }) => !line.includes('#') && !/^\s*#/.test(lines[i - 1] ?? '') && !/^\s+(host|port|tls|default|mode|verification|starttls|submission):/.test(line) && !/^[a-z_]+:\s*$/.test(line));
    expect(undocumented.map((u) => `${u.i + 1}: ${u.line}`)).toEqual([]);
  });

  it('names file, line and key for an unknown key', () => {
    const [p] = problemsOf(`${base}delivery:\n  concurency: 5\n`);
    expect(p).toMatchObject({ file: 'test.yaml', line: 6, key: 'delivery.concurency', message: 'unknown key' });
  });

  it('names line and key for a bad value', () => {
    const [p] = problemsOf(`${base}tls:\n  min_version: SSLv3\n`);
    expect(p).toMatchObject({ line: 6, key: 'tls.min_version' });
    const [q] = problemsOf(`${base}tls:\n  min_cipher_bits: 56\n`);
    expect(q).toMatchObject({ line: 6, key: 'tls.min_cipher_bits' });
    expect(String(q?.message)).toMatch(/128/);
  });

  it('TLSv1 and TLSv1.1 are refused as a minimum, globally and in a rule floor, naming file, line and key', () => {
    for (const version of ['TLSv1', 'TLSv1.1']) {
      const [global] = problemsOf(`${base}tls:\n  min_version: ${version}\n`);
      expect(global).toMatchObject({ file: 'test.yaml', line: 6, key: 'tls.min_version' });
      expect(String(global?.message)).toMatch(/TLSv1\.2.*TLSv1\.3/);
      const rule = `${base}policies:\n  rules:\n    - name: legacy\n      match: { recipient_domain: legacy.example }\n      mode: forced\n      floor:\n        min_version: ${version}\n`;
      const [inRule] = problemsOf(rule);
      expect(inRule).toMatchObject({ file: 'test.yaml', line: 11, key: 'policies.rules[legacy].floor.min_version' });
      expect(String(inRule?.message)).toMatch(/TLSv1\.2.*TLSv1\.3/);
    }
  });

  it('reports broken YAML with its line', () => {
    const [p] = problemsOf(`${base}delivery:\n  port: 25\n   routes: {}\n`);
    expect([6, 7]).toContain(p?.line);
    expect(new ConfigError([p!]).message).toMatch(/^test\.yaml:[67]:\d+: /);
  });

  it('rejects duplicate keys, unimplemented modes and non-CIDR networks', () => {
    expect(problemsOf(`${base}tls:\n  min_version: TLSv1.2\n  min_version: TLSv1.3\n`)[0]?.line).toBe(7);
    // dane without a validating resolver would trust answers nobody checked: refused where it is written, domain entry or rule.
    expect(problemsOf(`${base}policies:\n  domains:\n    bank.example: { mode: forced, verification: dane }\n`)[0]).toMatchObject({ key: 'policies.domains.bank.example.verification', line: 7, message: expect.stringMatching(/dane needs DNSSEC: set delivery\.dns\.dnssec: true/) });
    expect(problemsOf(`${base}policies:\n  rules:\n    - { name: r, match: { sender: a@b }, mode: forced, verification: dane }\n`)[0]).toMatchObject({ key: 'policies.rules[r].verification', line: 7 });
    expect(problemsOf(`${base}  relay_networks: [nonsense]\n`)[0]?.key).toBe('ingress.relay_networks[0]');
    expect(problemsOf(`${base}delivery:\n  routes:\n    x.test: "no-port"\n`)[0]).toMatchObject({ key: 'delivery.routes.x.test', line: 7 });
  });

  it('the portal, named as a mode or a step, needs master keys and a listener; forced is a step', () => {
    expect(problemsOf(`${base}policies:\n  default:\n    mode: portal\n`)[0]).toMatchObject({ key: 'policies.default.mode', line: 7, message: expect.stringMatching(/needs portal\.master_keys/) });
    expect(problemsOf(`${base}policies:\n  default:\n    mode: forced\n    fallback: [pgp, portal]\n`)[0]).toMatchObject({ key: 'policies.default.fallback[1]', line: 8, message: expect.stringMatching(/needs portal\.master_keys/) });
    const keys = `portal:\n  master_keys: [{ id: k1, file: k1.key }]\n  current_key: k1\n`;
    expect(problemsOf(`${base}${keys}policies:\n  rules:\n    - { name: r, match: { sender: a@b }, mode: portal }\n`)[0]).toMatchObject({ key: 'policies.rules[r].mode', message: expect.stringMatching(/needs portal\.listen/) });
    expect(problemsOf(`${base}${keys}dlp:\n  escalate_to: portal\n`)[0]).toMatchObject({ key: 'dlp.escalate_to', message: expect.stringMatching(/needs portal\.listen/) });
    const ok = parseConfig(
      `${base}${keys}  listen: 8443\npolicies:\n  rules:\n    - { name: lab, match: { sender: a@b }, mode: pgp, fallback: [smime, forced, portal], portal: { expiry_days: 7, key_in_link: true, passphrase: correct-horse } }\n`,
      'test.yaml',
      {},
    );
    expect(ok.policies.rules[0]).toMatchObject({ fallback: ['smime', 'forced', 'portal'], portal: { expiry_days: 7, key_in_link: true, passphrase: 'correct-horse' } });
    expect(problemsOf(`${base}policies:\n  rules:\n    - { name: r, match: { sender: a@b }, mode: forced, portal: { passphrase: short } }\n`)[0]).toMatchObject({ message: expect.stringMatching(/at least 8 characters/) });
  });

  it('fallback chains: tls-exclusive takes none, no step twice', () => {
    expect(problemsOf(`${base}policies:\n  domains:\n    news.example: { mode: tls-exclusive, fallback: [pgp] }\n`)[0]).toMatchObject({ key: 'policies.domains.news.example.fallback', message: expect.stringMatching(/tls-exclusive drops/) });
    expect(problemsOf(`${base}policies:\n  rules:\n    - { name: r, match: { sender: a@b }, mode: pgp, fallback: [smime, smime] }\n`)[0]).toMatchObject({ key: 'policies.rules[r].fallback', message: expect.stringMatching(/twice/) });
    expect(problemsOf(`${base}crypto:\n  smime:\n    signing_cert_file: a.pem\n`)[0]).toMatchObject({ key: 'crypto.smime', message: expect.stringMatching(/go together/) });
    expect(problemsOf(`${base}dkim:\n  domains:\n    clinic.example: { selector: "bad selector", key_file: k.pem }\n`)[0]).toMatchObject({ key: 'dkim.domains.clinic.example.selector' });
    const ok = parseConfig(`${base}policies:\n  default: { mode: forced, fallback: [smime] }\n  rules:\n    - { name: lab, match: { sender: a@b }, mode: pgp }\n`, 'test.yaml', {});
    expect(ok.policies.default.fallback).toEqual(['smime']);
    expect(ok.policies.rules[0]?.fallback).toBeUndefined();
  });

  // Operators' regexes run on RE2 (linear time), so RE2 syntax is the rule everywhere one is accepted.
  it('a backreference is refused in a header regex, a DLP pattern and the MRN id pattern, saying RE2 syntax is required', () => {
    const re2 = /^invalid regular expression: it must be RE2 syntax \(no backreferences like \\1, no lookahead or lookbehind\): invalid escape sequence: `\\1`$/;
    const [h] = problemsOf(`${base}policies:\n  rules:\n    - name: r\n      match:\n        header: { name: X-Tag, regex: "(a)\\\\1" }\n      mode: forced\n`);
    expect(h).toMatchObject({ file: 'test.yaml', line: expect.any(Number), key: expect.stringMatching(/^policies\.rules(\.0|\[r\])\.match\.header\.regex$/), message: expect.stringMatching(re2) });
    expect(new ConfigError([h!]).message).toMatch(/^test\.yaml:\d+:\d+: policies\.rules\S*\.match\.header\.regex: invalid regular expression: it must be RE2 syntax/);
    const [c] = problemsOf(`${base}dlp:\n  custom:\n    - { id: tag, pattern: "(a)\\\\1" }\n`);
    expect(c).toMatchObject({ file: 'test.yaml', line: expect.any(Number), key: expect.stringMatching(/^dlp\.custom(\.0|\[tag\])\.pattern$/), message: expect.stringMatching(re2) });
    expect(problemsOf(`${base}dlp:\n  mrn:\n    id_pattern: "(a)\\\\1"\n`)[0]).toMatchObject({ line: 7, key: 'dlp.mrn.id_pattern', message: expect.stringMatching(re2) });
    // Lookaround too; and a DLP pattern that matches the empty string, at its own key.
    expect(problemsOf(`${base}policies:\n  rules:\n    - { name: r, match: { header: { name: X, regex: "a(?=b)" } }, mode: forced }\n`)[0]?.message).toMatch(/RE2 syntax.*`\(\?=`/);
    expect(problemsOf(`${base}dlp:\n  custom:\n    - { id: tag, pattern: "a*" }\n`)[0]).toMatchObject({ key: expect.stringMatching(/^dlp\.custom(\.0|\[tag\])\.pattern$/), message: 'the pattern matches the empty string' });
  });

  it('patterns JavaScript would backtrack on are accepted: RE2 runs them in linear time', () => {
    const c = parseConfig(`${base}policies:\n  rules:\n    - { name: r, match: { header: { name: X-Tag, regex: "(a+)+$" } }, mode: forced }\ndlp:\n  custom:\n    - { id: tag, pattern: "(a+)+$" }\n`, 'test.yaml', {});
    expect(c.policies.rules[0]?.match.header?.regex).toBe('(a+)+$');
    expect(c.dlp.custom[0]?.pattern).toBe('(a+)+$');
  });

  it('match.dlp: [no-such-detector] is refused at that rule, listing the known ids', () => {
    const [p] = problemsOf(`${base}policies:\n  rules:\n    - name: phi\n      match: { dlp: [no-such-detector] }\n      mode: forced\n`);
    expect(p).toMatchObject({ file: 'test.yaml', line: expect.any(Number), key: expect.stringMatching(/^policies\.rules(\.0|\[phi\])\.match\.dlp/) });
    expect(p?.message).toMatch(/unknown DLP detector "no-such-detector" \(\w+: ssn, credit-card, mrn, icd10, dob, incomplete\)/);
  });

  it('a missing file is a clear error', () => {
    expect(() => loadConfig('/nonexistent/sealrelay.yaml')).toThrow(/nonexistent\/sealrelay.yaml: cannot read/);
  });

  it('environment overrides ports, store path and DNS servers', () => {
    const c = parseConfig(base, 'test.yaml', {
      SEALRELAY_LISTENER_STARTTLS_PORT: '0',
      SEALRELAY_LISTENER_SMTPS_PORT: '1465',
      SEALRELAY_STORE_PATH: '/tmp/x.db',
      SEALRELAY_DNS_SERVERS: '127.0.0.1:5353, 127.0.0.2',
    });
    expect(c.ingress.listeners.starttls?.port).toBe(0);
    expect(c.ingress.listeners.smtps).toMatchObject({ port: 1465, tls: 'starttls' });
    expect(c.store.path).toBe('/tmp/x.db');
    expect(c.delivery.dns.servers).toEqual(['127.0.0.1:5353', '127.0.0.2']);
    expect(problemsOf(base, { SEALRELAY_LISTENER_STARTTLS_PORT: 'http' })[0]?.key).toBe('SEALRELAY_LISTENER_STARTTLS_PORT');
  });

  it('a DNS server is an address with an optional port, refused at load otherwise', () => {
    const servers = (list: string) => `${base}delivery:\n  dns:\n    servers: [${list}]\n`;
    expect(parseConfig(servers('"127.0.0.1", "127.0.0.1:5353", "::1", "[::1]:53"'), 'test.yaml', {}).delivery.dns.servers).toHaveLength(4);
    for (const bad of ['"dns.example"', '"127.0.0.1:0"', '"127.0.0.1:dns"', '"[dns.example]:53"']) {
      expect(problemsOf(servers(bad))[0], bad).toMatchObject({ key: 'delivery.dns.servers[0]', message: expect.stringMatching(/expected an IP address with an optional port/) });
    }
  });
});

describe('paths', () => {
  /** A config file in a fresh temp dir (never the working directory of the test). */
  const configIn = (text: string) => {
    const dir = mkdtempSync(join(tmpdir(), 'sealrelay-load-'));
    const file = join(dir, 'sealrelay.yaml');
    writeFileSync(file, text);
    return { dir, file };
  };
  const at = (config: unknown, path: readonly string[]) => path.reduce<unknown>((node, key) => (node as Record<string, unknown>)[key], config);

  it('relative paths in a config file resolve from its directory, every path setting', () => {
    const { dir, file } = configIn(
      [
        'store: { path: data/relay.db }',
        'ingress:',
        '  listeners: { starttls: { port: 0 } }',
        '  cert_file: certs/relay.crt',
        '  key_file: certs/relay.key',
        '  users_file: users.yaml',
        'tls: { ca_file: ca/bundle.pem }',
        'mta_sts: { ca_file: ca/mta-sts.pem }',
        'tlsrpt: { ca_file: ca/tlsrpt.pem }',
        'policies:',
        '  rules:',
        '    - { name: partners, match: { recipient_domains_file: lists/partners.txt }, mode: forced }',
        'crypto:',
        '  pgp: { archive_key_file: keys/archive.asc, signing_key_file: keys/signer.asc, signing_passphrase_file: keys/pass }',
        '  smime: { archive_cert_file: keys/archive.crt, signing_cert_file: keys/signer.crt, signing_key_file: keys/signer.key }',
        '  wkd: { ca_file: ca/wkd.pem }',
        'dkim:',
        '  domains: { clinic.example: { selector: s1, key_file: ../outside/dkim.key } }',
        'evidence: { signing_key_file: keys/evidence.pem }',
        'tracking: { key: { file: keys/tracking.key } }',
      ].join('\n'),
    );
    const config = loadConfig(file);
    expect(config.store.path).toBe(join(dir, 'data/relay.db'));
    expect(config.ingress.users_file).toBe(join(dir, 'users.yaml'));
    expect(config.policies.rules[0]?.match.recipient_domains_file).toBe(join(dir, 'lists/partners.txt'));
    expect(config.dkim.domains['clinic.example']?.key_file).toBe(resolve(dir, '../outside/dkim.key'));
    // Every other path setting the loader knows came out under the config's directory.
    const fixed = PATH_SETTINGS.filter((p) => !p.includes('*'));
    expect(fixed.filter((p) => !String(at(config, p)).startsWith(`${dir}/`)).map((p) => p.join('.'))).toEqual([]);
  });

  it('defaults resolve from the config directory too; absolute paths and :memory: stay as written', () => {
    const { dir, file } = configIn('store: { path: ":memory:" }\ningress:\n  listeners: {}\n  cert_file: /etc/ssl/relay.crt\n');
    const config = loadConfig(file);
    expect(config.store.path).toBe(':memory:');
    expect(config.ingress.cert_file).toBe('/etc/ssl/relay.crt');
    expect(config.ingress.key_file).toBe(join(dir, 'certs/sealrelay-dev.key'));
    expect(config.ingress.users_file).toBe(join(dir, 'users.yaml'));
  });

  it('paths from the environment are relative to the working directory', () => {
    const { file } = configIn('ingress:\n  listeners: {}\n');
    const config = loadConfig(file, { SEALRELAY_STORE_PATH: 'var/x.db', SEALRELAY_CERT_FILE: '/abs/c.crt' });
    expect(config.store.path).toBe(resolve('var/x.db'));
    expect(config.ingress.cert_file).toBe('/abs/c.crt');
  });

  it('the shipped config, run from the checkout, names the same files as the quick start always used', () => {
    const config = loadConfig('config/sealrelay.yaml');
    expect(config.store.path).toBe(resolve('data/sealrelay.db'));
    expect(config.ingress.cert_file).toBe(resolve('certs/sealrelay-dev.crt'));
    expect(config.ingress.key_file).toBe(resolve('certs/sealrelay-dev.key'));
    expect(config.ingress.users_file).toBe(resolve('config/users.yaml'));
  });
});

describe('where a problem is', () => {
  it('an error in a rule names the rule and points at the key inside it, not at `rules:`', () => {
    const text = [
      'ingress:',
      '  listeners: {}',
      'policies:',
      '  rules:',
      '    - name: lab-results',
      '      match: { sender: results@lab.example }',
      '      mode: pgp',
      '    - name: bank-demands-tls',
      '      match:',
      '        recipient_domain: bank.example',
      '      mode: forcd',
      '      verification: ca',
    ].join('\n');
    expect(problemsOf(text)).toEqual([expect.objectContaining({ key: 'policies.rules[bank-demands-tls].mode', line: 11, column: 7 })]);
    // A problem inside the rule's match, and a rule without a usable name (by index).
    expect(problemsOf(text.replace('recipient_domain: bank.example', 'recipient_domian: bank.example').replace('forcd', 'forced'))).toContainEqual(
      expect.objectContaining({ key: 'policies.rules[bank-demands-tls].match.recipient_domian', line: 10, message: 'unknown key' }),
    );
    expect(problemsOf(text.replace('name: bank-demands-tls', 'name: "bank demands tls"').replace('forcd', 'forced'))[0]).toMatchObject({ key: 'policies.rules[1].name', line: 8 });
  });

  it('a rule naming a DLP detector that is not configured is an error on that rule', () => {
    const text = `${base}dlp:\n  detectors: [ssn]\n  custom: [{ id: patient-id, pattern: "PID-[0-9]{8}" }]\npolicies:\n  rules:\n    - name: phi\n      match: { dlp: [ssn, patient-id, incomplete, credit-card] }\n      mode: forced\n`;
    expect(problemsOf(text)).toEqual([expect.objectContaining({ key: 'policies.rules[phi].match.dlp[3]', line: 11, message: expect.stringMatching(/unknown DLP detector "credit-card"/) })]);
  });

  it('problems found after loading are placed at their setting: dotted names with domains, env-set values', () => {
    const text = `${base}  cert_file: relay.crt\ndkim:\n  domains:\n    clinic.example:\n      selector: s1\n      key_file: dkim.key\n`;
    const loaded = parseWith(text);
    expect(loaded.problem('dkim.domains.clinic.example.key_file', 'no such file')).toEqual({ file: 'test.yaml', line: 10, column: 7, key: 'dkim.domains.clinic.example.key_file', message: 'no such file' });
    expect(loaded.problem(['ingress', 'cert_file'], 'x')).toMatchObject({ line: 5, key: 'ingress.cert_file' });
    const fromEnv = parseWith(text, { SEALRELAY_CERT_FILE: '/x.crt' });
    expect(fromEnv.problem(['ingress', 'cert_file'], 'x')).toMatchObject({ file: 'SEALRELAY_CERT_FILE (environment)', line: null, key: 'ingress.cert_file' });
  });
});

function parseWith(text: string, env = {}) {
  return parseConfigFile(text, 'test.yaml', env);
}

describe('an empty config file', () => {
  it('is refused, naming the file: a reload that catches a file an editor has truncated keeps the running config', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sealrelay-empty-config-'));
    for (const text of ['', '\n', '  \n\t\n']) {
      const file = join(dir, 'sealrelay.yaml');
      writeFileSync(file, text);
      expect(() => loadConfig(file)).toThrow(ConfigError);
      expect(() => loadConfig(file)).toThrow(`${file}: the file is empty`);
    }
  });
});
