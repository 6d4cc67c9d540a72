// Loads sealrelay.yaml: parse YAML (keeping positions), apply environment
// overrides, validate with the schema, and turn every problem into a message that
// names the file, line and key. Nothing else in the code base parses YAML config.
import { readFileSync } from 'node:fs';
import { isMap, isScalar, LineCounter, parseDocument, type Document } from 'yaml';
import type { z } from 'zod';
import { configSchema, type Config } from './schema.ts';

export interface ConfigProblem {
  file: string;
  line: number | null;
  column: number | null;
  /** Dotted path of the offending key, e.g. "delivery.retry.first_seconds". */
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
 * Environment overrides for secrets and ports, so containers need no edited YAML:
 *   SEALRELAY_HOSTNAME, SEALRELAY_STORE_PATH, SEALRELAY_USERS_FILE,
 *   SEALRELAY_CERT_FILE, SEALRELAY_KEY_FILE, SEALRELAY_DNS_SERVERS (comma list),
 *   SEALRELAY_LISTENER_<NAME>_PORT and SEALRELAY_LISTENER_<NAME>_HOST.
 */
export type Env = Readonly<Record<string, string | undefined>>;

export function loadConfig(file: string, env: Env = {}): Config {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError([{ file, line: null, column: null, key: '', message: `cannot read: ${(err as Error).message}` }]);
  }
  return parseConfig(text, file, env);
}

export function parseConfig(text: string, file: string, env: Env = {}): Config {
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
  applyEnv(raw, env, file);
  const result = configSchema.safeParse(raw);
  if (!result.success) {
    const problems = result.error.issues.map((i) => toProblem(i, doc, lineCounter, file));
    throw new ConfigError(problems.sort((a, b) => (a.line ?? 0) - (b.line ?? 0)));
  }
  return result.data;
}

function toProblem(issue: z.core.$ZodIssue, doc: Document, lc: LineCounter, file: string): ConfigProblem {
  const path = issue.path.map(String);
  let message = issue.message;
  if (issue.code === 'unrecognized_keys') {
    // Point at the unknown key itself, not at its parent object.
    const key = issue.keys[0] ?? '';
    path.push(key);
    message = `unknown key${issue.keys.length > 1 ? `s ${issue.keys.join(', ')}` : ''}`;
  }
  const pos = positionOf(doc, path, lc);
  return { file, line: pos?.line ?? null, column: pos?.col ?? null, key: path.join('.'), message };
}

/** Line of the deepest node on `path` that exists in the document (the key when it is a map entry). */
export function positionOf(doc: Document, path: string[], lc: LineCounter): { line: number; col: number } | null {
  let node: unknown = doc.contents;
  let offset: number | undefined = (doc.contents as { range?: number[] } | null)?.range?.[0];
  for (const segment of path) {
    if (!isMap(node)) break;
    const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === segment);
    if (!pair) break;
    offset = isScalar(pair.key) ? pair.key.range?.[0] : offset;
    node = pair.value;
  }
  return offset === undefined ? null : lc.linePos(offset);
}

function applyEnv(raw: unknown, env: Env, file: string): void {
  if (typeof raw !== 'object' || raw === null) return;
  const set = (path: string[], value: unknown) => {
    let obj = raw as Record<string, unknown>;
    for (const key of path.slice(0, -1)) {
      if (typeof obj[key] !== 'object' || obj[key] === null) obj[key] = {};
      obj = obj[key] as Record<string, unknown>;
    }
    obj[path[path.length - 1] as string] = value;
  };
  const simple: Record<string, string[]> = {
    SEALRELAY_HOSTNAME: ['server', 'hostname'],
    SEALRELAY_STORE_PATH: ['store', 'path'],
    SEALRELAY_USERS_FILE: ['ingress', 'users_file'],
    SEALRELAY_CERT_FILE: ['ingress', 'cert_file'],
    SEALRELAY_KEY_FILE: ['ingress', 'key_file'],
  };
  for (const [name, path] of Object.entries(simple)) {
    const value = env[name];
    if (value !== undefined && value !== '') set(path, value);
  }
  const dns = env.SEALRELAY_DNS_SERVERS;
  if (dns) set(['delivery', 'dns', 'servers'], dns.split(',').map((s) => s.trim()).filter(Boolean));
  for (const [name, value] of Object.entries(env)) {
    const m = /^SEALRELAY_LISTENER_([A-Z0-9_]+)_(PORT|HOST)$/.exec(name);
    if (!m || value === undefined || value === '') continue;
    const listener = (m[1] as string).toLowerCase();
    if (m[2] === 'PORT') {
      const port = Number(value);
      if (!Number.isInteger(port) || port < 0 || port > 65535) {
        throw new ConfigError([{ file: `environment (${file})`, line: null, column: null, key: name, message: `not a port: ${value}` }]);
      }
      set(['ingress', 'listeners', listener, 'port'], port);
    } else {
      set(['ingress', 'listeners', listener, 'host'], value);
    }
  }
}
