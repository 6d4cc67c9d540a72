import { describe, expect, it } from 'vitest';
import { parseDocument } from 'yaml';
import { readFileSync } from 'node:fs';
import { ConfigError, loadConfig, parseConfig } from '../../src/config/load.ts';
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

  it('reports broken YAML with its line', () => {
    const [p] = problemsOf(`${base}delivery:\n  port: 25\n   routes: {}\n`);
    expect([6, 7]).toContain(p?.line);
    expect(new ConfigError([p!]).message).toMatch(/^test\.yaml:[67]:\d+: /);
  });

  it('rejects duplicate keys, unimplemented modes and non-CIDR networks', () => {
    expect(problemsOf(`${base}tls:\n  min_version: TLSv1.2\n  min_version: TLSv1.3\n`)[0]?.line).toBe(7);
    expect(problemsOf(`${base}policies:\n  default:\n    mode: portal\n`)[0]).toMatchObject({ key: 'policies.default.mode', line: 7 });
    // dane would defer every message it governs: refused where it is written, domain entry or rule.
    expect(problemsOf(`${base}policies:\n  domains:\n    bank.example: { mode: forced, verification: dane }\n`)[0]).toMatchObject({ key: 'policies.domains.bank.example.verification', line: 7, message: expect.stringMatching(/dane is not available yet/) });
    expect(problemsOf(`${base}policies:\n  rules:\n    - { name: r, match: { sender: a@b }, mode: forced, verification: dane }\n`)[0]).toMatchObject({ key: 'policies.rules.0.verification' });
    expect(problemsOf(`${base}  relay_networks: [nonsense]\n`)[0]?.key).toBe('ingress.relay_networks.0');
    expect(problemsOf(`${base}delivery:\n  routes:\n    x.test: "no-port"\n`)[0]).toMatchObject({ key: 'delivery.routes.x.test', line: 7 });
  });

  it('fallback chains: portal is not available yet, tls-exclusive takes none, no step twice', () => {
    expect(problemsOf(`${base}policies:\n  default:\n    mode: forced\n    fallback: [pgp, portal]\n`)[0]).toMatchObject({ key: 'policies.default.fallback.1', line: 8, message: expect.stringMatching(/portal is not available yet/) });
    expect(problemsOf(`${base}policies:\n  domains:\n    news.example: { mode: tls-exclusive, fallback: [pgp] }\n`)[0]).toMatchObject({ key: 'policies.domains.news.example.fallback', message: expect.stringMatching(/tls-exclusive drops/) });
    expect(problemsOf(`${base}policies:\n  rules:\n    - { name: r, match: { sender: a@b }, mode: pgp, fallback: [smime, smime] }\n`)[0]).toMatchObject({ key: 'policies.rules.0.fallback', message: expect.stringMatching(/twice/) });
    expect(problemsOf(`${base}crypto:\n  smime:\n    signing_cert_file: a.pem\n`)[0]).toMatchObject({ key: 'crypto.smime', message: expect.stringMatching(/go together/) });
    expect(problemsOf(`${base}dkim:\n  domains:\n    clinic.example: { selector: "bad selector", key_file: k.pem }\n`)[0]).toMatchObject({ key: 'dkim.domains.clinic.example.selector' });
    const ok = parseConfig(`${base}policies:\n  default: { mode: forced, fallback: [smime] }\n  rules:\n    - { name: lab, match: { sender: a@b }, mode: pgp }\n`, 'test.yaml', {});
    expect(ok.policies.default.fallback).toEqual(['smime']);
    expect(ok.policies.rules[0]?.fallback).toBeUndefined();
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
});
