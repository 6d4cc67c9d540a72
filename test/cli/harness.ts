// Test harness for the `sealrelay` command: a temp dir with a config and a SQLite
// store, the CLI run as a real child process (node bin/sealrelay.js, as an operator
// would), and a store seeded in-process through SqliteStore.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { DeliveryRecord, Outcome } from '../../src/delivery/record.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import type { NewMessage } from '../../src/store/store.ts';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
/** One spawn through tsx takes ~0.5 s; generous for a loaded 2-core machine. */
const CLI_TIMEOUT_MS = 20_000;

export interface Sandbox {
  readonly dir: string;
  readonly configFile: string;
  readonly storePath: string;
  readonly usersFile: string;
  cleanup(): void;
}

export function makeSandbox(extraYaml = ''): Sandbox {
  const dir = mkdtempSync(join(tmpdir(), 'sealrelay-cli-'));
  const storePath = join(dir, 'data', 'sealrelay.db');
  const usersFile = join(dir, 'users.yaml');
  const configFile = join(dir, 'sealrelay.yaml');
  writeFileSync(
    configFile,
    [
      'store:',
      `  path: ${JSON.stringify(storePath)}`,
      'ingress:',
      '  listeners:',
      '    starttls: { port: 0 }',
      `  users_file: ${JSON.stringify(usersFile)}`,
      // The development names: `start` generates a missing pair only under them.
      `  cert_file: ${JSON.stringify(join(dir, 'certs', 'sealrelay-dev.crt'))}`,
      `  key_file: ${JSON.stringify(join(dir, 'certs', 'sealrelay-dev.key'))}`,
      extraYaml,
    ].join('\n'),
  );
  return { dir, configFile, storePath, usersFile, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `sealrelay <args>` from the repo root (or `cwd`); resolves with the exit code, never rejects on failure. */
export function runCli(args: readonly string[], opts: { input?: string; env?: Record<string, string>; cwd?: string } = {}): Promise<CliResult> {
  // Overrides from the developer's shell (SEALRELAY_STORE_PATH, ...) must not leak into the test.
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('SEALRELAY_')));
  const env: NodeJS.ProcessEnv = { ...inherited, ...opts.env };
  return new Promise((done, fail) => {
    const child = execFile(process.execPath, [join(ROOT, 'bin/sealrelay.js'), ...args], { cwd: opts.cwd ?? ROOT, env, timeout: CLI_TIMEOUT_MS }, (err, stdout, stderr) => {
      if (err && typeof err.code !== 'number') return fail(err);
      done({ code: typeof err?.code === 'number' ? err.code : 0, stdout, stderr });
    });
    child.stdin?.end(opts.input ?? '');
  });
}

export const MINUTE = 60_000;
export const HOUR = 60 * MINUTE;
export const DAY = 24 * HOUR;

export function message(queueId: string, recipients: string[], receivedAt: number, extra: Partial<NewMessage> = {}): NewMessage {
  return {
    queueId,
    sender: 'app@clinic.example',
    recipients,
    body: Buffer.from(`Subject: test ${queueId}\r\n\r\nhello\r\n`),
    messageId: `<${queueId.toLowerCase()}@clinic.example>`,
    subject: `test ${queueId}`,
    clientIp: '127.0.0.1',
    authUser: 'app',
    receivedAt,
    ...extra,
  };
}

export const TLS13 = {
  protocol: 'TLSv1.3',
  cipher: 'TLS_AES_256_GCM_SHA384',
  bits: 256,
  authorized: true,
  authorizationError: null,
  peerCertSubject: 'CN=mx.example.org',
  peerCertFingerprint256: 'AA:BB',
} as const;

/** A hand-made record; the fields not given describe a plain opportunistic TLS delivery. */
export function record(r: {
  queueId: string;
  seq: number;
  recipient: string;
  attempt: number;
  at: number;
  outcome: Outcome;
  messageId?: string | null;
  fields?: Partial<DeliveryRecord>;
}): DeliveryRecord {
  return {
    queueId: r.queueId,
    seq: r.seq,
    messageId: r.messageId ?? `<${r.queueId.toLowerCase()}@clinic.example>`,
    attempt: r.attempt,
    at: new Date(r.at).toISOString(),
    sender: 'app@clinic.example',
    recipient: r.recipient,
    domain: r.recipient.slice(r.recipient.lastIndexOf('@') + 1).toLowerCase(),
    decision: { rule: 'default', mode: 'opportunistic', verification: 'none', fallbackChain: [], reasons: ['default policy'] },
    method: 'tls',
    outcome: r.outcome,
    mx: { host: `mx.${r.recipient.split('@')[1]}`, ip: '127.0.0.1', port: 25, preference: 10 },
    starttlsOffered: true,
    tls: TLS13,
    smtp: { code: 250, enhanced: '2.0.0', response: '250 2.0.0 Ok: queued as 4ABC' },
    durationMs: 42,
    ...r.fields,
  };
}

export async function withStore<T>(path: string, use: (store: SqliteStore) => Promise<T>): Promise<T> {
  const store = new SqliteStore(path);
  try {
    return await use(store);
  } finally {
    await store.close();
  }
}

/** Claims every due recipient now, so that `finish` may settle them. */
export async function claimAll(store: SqliteStore, now = Date.now()) {
  return store.claim({ owner: 'test', limit: 1000, leaseMs: HOUR, now });
}

/** Lines of stdout that are not blank. */
export function lines(text: string): string[] {
  return text.split('\n').filter((l) => l.trim() !== '');
}
