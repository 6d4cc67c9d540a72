// Loads sealrelay.yaml: parse YAML (keeping positions), apply environment
// overrides, validate with the schema, resolve relative paths, and turn every
// problem into a message that names the file, line and key. Nothing else in the
// code base parses YAML config.
//
// Relative paths in the file are relative to the directory of the file, so the
// same config works whatever directory the command runs in (`-c /etc/sealrelay/…`
// from anywhere); paths given in the environment are the shell's, relative to the
// working directory. Every Config this module returns holds absolute paths.
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Document } from 'yaml';
import type { z } from 'zod';
import { configSchema, type Config } from './schema.ts';

export interface ConfigProblem {
  file: string;
  line: number | null;
  column: number | null;
  /** Path of the offending key, e.g. "delivery.retry.first_seconds" or "policies.rules[bank-demands-tls].mode". */
  key: string;
  message: string;
}

export class ConfigError extends Error {
  readonly problems: readonly ConfigProblem[];
  constructor(problems: ConfigProblem[]) {
    super(problems.map(formatProblem).join('\n'));
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

export function formatProblem(p: ConfigProblem): string {
  const where = p.line === null ? p.file : `${p.file}:${p.line}:${p.column ?? 1}`;
  return `${where}: ${p.key ? `${p.key}: ` : ''}${p.message}`;
}

/**
 * A setting, as the schema's path (["policies", "rules", 0, "mode"]) or as a dotted
 * name ("dkim.domains.clinic.example.key_file": keys that contain dots are matched
 * against the file).
 */
export type SettingPath = readonly (string | number)[] | string;

/** A loaded config that can still say where each of its settings is written. */
export interface LoadedConfig {
  readonly config: Config;
  readonly file: string;
  /** The settings the file and the environment gave explicitly (no defaults), as parsed YAML. */
  readonly explicit: unknown;
  /** Settings (dotted paths) that came from the environment, and the variable of each. */
  readonly fromEnv: ReadonlyMap<string, string>;
  /** A problem with `setting`, placed at its line (or naming the environment variable that set it). */
  problem(setting: SettingPath, message: string): ConfigProblem;
}

/**
 * Environment overrides for secrets and ports, so containers need no edited YAML:
 *   SEALRELAY_HOSTNAME, SEALRELAY_STORE_PATH, SEALRELAY_USERS_FILE,
 *   SEALRELAY_CERT_FILE, SEALRELAY_KEY_FILE, SEALRELAY_DNS_SERVERS (comma list),
 *   SEALRELAY_LISTENER_<NAME>_PORT and SEALRELAY_LISTENER_<NAME>_HOST.
 */
export type Env = Readonly<Record<string, string | undefined>>;

/**
 * Every setting that names a file ("*" stands for any key or list item). A new path
 * setting goes here, or it would be read relative to the working directory.
 */
export const PATH_SETTINGS: readonly (readonly string[])[] = [
  ['store', 'path'],
  ['store', 'encryption', 'keys', '*', 'file'],
  ['ingress', 'cert_file'],
  ['ingress', 'key_file'],
  ['ingress', 'users_file'],
  ['tls', 'ca_file'],
  ['policies', 'rules', '*', 'match', 'recipient_domains_file'],
  ['mta_sts', 'ca_file'],
  ['tlsrpt', 'ca_file'],
  ['crypto', 'pgp', 'archive_key_file'],
  ['crypto', 'pgp', 'signing_key_file'],
  ['crypto', 'pgp', 'signing_passphrase_file'],
  ['crypto', 'smime', 'archive_cert_file'],
  ['crypto', 'smime', 'signing_cert_file'],
  ['crypto', 'smime', 'signing_key_file'],
  ['crypto', 'wkd', 'ca_file'],
  ['dkim', 'domains', '*', 'key_file'],
  ['evidence', 'signing_key_file'],
  ['portal', 'master_keys', '*', 'file'],
  ['tracking', 'key', 'file'],
  ['webhooks', 'endpoints', '*', 'secrets', '*', 'file'],
];

export function loadConfig(file: string, env: Env = {}): Config {
  return loadConfigFile(file, env).config;
}

export function loadConfigFile(file: string, env: Env = {}): LoadedConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError([{ file, line: null, column: null, key: '', message: `cannot read: ${(err as Error).message}` }]);
  }
  // Never what an operator means, and what a reload sees when it reads a file an editor
  // has just truncated to write it again: all defaults, no routes, no rules. Refused, so
  // the running config stays until the file is whole (the next look reloads it).
  if (!text.trim()) throw new ConfigError([{ file, line: null, column: null, key: '', message: 'the file is empty' }]);
  return parseConfigFile(text, file, env);
}

export function parseConfig(text: string, file: string, env: Env = {}): Config {
  return parseConfigFile(text, file, env).config;
}

/** `text` as the content of `file` (whose directory relative paths are resolved from). */
export function parseConfigFile(text: string, file: string, env: Env = {}): LoadedConfig {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length) {
    throw new ConfigError(
      doc.errors.map((e) => {
        const pos = e.linePos?.[0];
        return { file, line: pos?.line ?? null, column: pos?.col ?? null, key: '', message: (e.message.split('\n')[0] ?? e.code).replace(/ at line \d+, column \d+:?$/, '') };
      }),
    );
  }
  const raw: unknown = doc.toJS() ?? {};
  const fromEnv = applyEnv(raw, env, file);
  const explicit: unknown = structuredClone(raw);
  const result = configSchema.safeParse(raw);
  if (!result.success) {
    const problems = result.error.issues.map((i) => toProblem(i, doc, lineCounter, file));
    throw new ConfigError(problems.sort((a, b) => (a.line ?? 0) - (b.line ?? 0)));
  }
  const config = result.data;
  resolvePaths(config, dirname(resolve(file)));
  return {
    config,
    file,
    explicit,
    fromEnv,
    problem(setting, message) {
      const path = typeof setting === 'string' ? splitSetting(doc, setting) : setting;
      const key = keyName(doc, path);
      const variable = fromEnv.get(path.join('.'));
      if (variable) return { file: `${variable} (environment)`, line: null, column: null, key, message };
      const pos = positionOf(doc, path, lineCounter);
      return { file, line: pos?.line ?? null, column: pos?.col ?? null, key, message };
    },
  };
}

function toProblem(issue: z.core.$ZodIssue, doc: Document, lc: LineCounter, file: string): ConfigProblem {
  const path: PropertyKey[] = [...issue.path];
  let message = issue.message;
  if (issue.code === 'unrecognized_keys') {
    // Point at the unknown key itself, not at its parent object.
    const key = issue.keys[0] ?? '';
    path.push(key);
    message = `unknown key${issue.keys.length > 1 ? `s ${issue.keys.join(', ')}` : ''}`;
  }
  const segments = path.map((s) => (typeof s === 'number' ? s : String(s)));
  const pos = positionOf(doc, segments, lc);
  return { file, line: pos?.line ?? null, column: pos?.col ?? null, key: keyName(doc, segments), message };
}

/** The node at `segment` of a map or sequence, and where its key (or item) starts. */
function step(node: unknown, segment: string | number): { node: unknown; offset: number | undefined } | null {
  if (isMap(node)) {
    const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(segment));
    return pair ? { node: pair.value, offset: isScalar(pair.key) ? pair.key.range?.[0] : undefined } : null;
  }
  if (isSeq(node) && typeof segment === 'number') {
    const item = node.items[segment] as { range?: number[] } | undefined;
    return item ? { node: item, offset: item.range?.[0] } : null;
  }
  return null;
}

/** Line of the deepest node on `path` that exists in the document (the key when it is a map entry). */
export function positionOf(doc: Document, path: readonly (string | number)[], lc: LineCounter): { line: number; col: number } | null {
  let node: unknown = doc.contents;
  let offset: number | undefined = (doc.contents as { range?: number[] } | null)?.range?.[0];
  for (const segment of path) {
    const next = step(node, segment);
    if (!next) break;
    offset = next.offset ?? offset;
    node = next.node;
  }
  return offset === undefined ? null : lc.linePos(offset);
}

/**
 * The path as people read it: list items by their `name` (or `id`) when they have
 * one, so an error in a rule says which rule — policies.rules[bank-demands-tls].mode —
 * and by index otherwise (ingress.relay_networks[0]).
 */
function keyName(doc: Document, path: readonly (string | number)[]): string {
  let node: unknown = doc.contents;
  let out = '';
  for (const segment of path) {
    if (typeof segment === 'number') {
      const item: unknown = isSeq(node) ? node.items[segment] : undefined;
      const label = isMap(item) ? (item.get('name', true) ?? item.get('id', true)) : undefined;
      const name = isScalar(label) && typeof label.value === 'string' && /^[^\s[\]]+$/.test(label.value) ? label.value : String(segment);
      out += `[${name}]`;
    } else {
      out += out ? `.${segment}` : segment;
    }
    node = step(node, segment)?.node;
  }
  return out;
}

/** A dotted setting name as a path, matching keys that contain dots (domain names) against the document. */
function splitSetting(doc: Document, dotted: string): (string | number)[] {
  const path: (string | number)[] = [];
  let node: unknown = doc.contents;
  let rest = dotted;
  while (rest) {
    const keys = isMap(node) ? node.items.map((p) => (isScalar(p.key) ? String(p.key.value) : '')) : [];
    const key = keys.filter((k) => k && (rest === k || rest.startsWith(`${k}.`))).sort((a, b) => b.length - a.length)[0] ?? rest.split('.')[0]!;
    path.push(key);
    node = step(node, key)?.node;
    rest = rest.slice(key.length + 1);
  }
  return path;
}

/** Makes every relative path setting absolute, from `base` (the config file's directory). */
function resolvePaths(config: Config, base: string): void {
  const visit = (node: unknown, pattern: readonly string[]): void => {
    if (typeof node !== 'object' || node === null) return;
    const [head, ...rest] = pattern as [string, ...string[]];
    const obj = node as Record<string, unknown>;
    const keys = head === '*' ? Object.keys(obj) : [head];
    for (const key of keys) {
      if (rest.length) visit(obj[key], rest);
      else if (typeof obj[key] === 'string' && obj[key] !== '' && obj[key] !== ':memory:') obj[key] = resolve(base, obj[key]);
    }
  };
  for (const pattern of PATH_SETTINGS) visit(config, pattern);
}

/** Applies the overrides to `raw`; returns which settings (dotted) came from which variable. */
function applyEnv(raw: unknown, env: Env, file: string): Map<string, string> {
  const fromEnv = new Map<string, string>();
  if (typeof raw !== 'object' || raw === null) return fromEnv;
  const set = (path: string[], value: unknown, variable: string) => {
    let obj = raw as Record<string, unknown>;
    for (const key of path.slice(0, -1)) {
      if (typeof obj[key] !== 'object' || obj[key] === null) obj[key] = {};
      obj = obj[key] as Record<string, unknown>;
    }
    obj[path[path.length - 1] as string] = value;
    fromEnv.set(path.join('.'), variable);
  };
  const simple: Record<string, string[]> = {
    SEALRELAY_HOSTNAME: ['server', 'hostname'],
  };
  // Paths from the environment are the shell's: made absolute here, from the working directory.
  const paths: Record<string, string[]> = {
    SEALRELAY_STORE_PATH: ['store', 'path'],
    SEALRELAY_USERS_FILE: ['ingress', 'users_file'],
    SEALRELAY_CERT_FILE: ['ingress', 'cert_file'],
    SEALRELAY_KEY_FILE: ['ingress', 'key_file'],
  };
  for (const [name, path] of Object.entries(simple)) {
    const value = env[name];
    if (value !== undefined && value !== '') set(path, value, name);
  }
  for (const [name, path] of Object.entries(paths)) {
    const value = env[name];
    if (value !== undefined && value !== '') set(path, value === ':memory:' ? value : resolve(value), name);
  }
  const dns = env.SEALRELAY_DNS_SERVERS;
  if (dns) set(['delivery', 'dns', 'servers'], dns.split(',').map((s) => s.trim()).filter(Boolean), 'SEALRELAY_DNS_SERVERS');
  for (const [name, value] of Object.entries(env)) {
    const m = /^SEALRELAY_LISTENER_([A-Z0-9_]+)_(PORT|HOST)$/.exec(name);
    if (!m || value === undefined || value === '') continue;
    const listener = (m[1] as string).toLowerCase();
    if (m[2] === 'PORT') {
      const port = Number(value);
      if (!Number.isInteger(port) || port < 0 || port > 65535) {
        throw new ConfigError([{ file: `environment (${file})`, line: null, column: null, key: name, message: `not a port: ${value}` }]);
      }
      set(['ingress', 'listeners', listener, 'port'], port, name);
    } else {
      set(['ingress', 'listeners', listener, 'host'], value, name);
    }
  }
  return fromEnv;
}
