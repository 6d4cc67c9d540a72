// `sealrelay status`: is the relay up and doing its job — for an operator, a
// container HEALTHCHECK and systemd's ExecStartPost. It looks from outside, the way
// clients and monitors would: the store's owner lock says whether a relay runs on
// it (the kernel drops the lock when the process dies, so a crash never looks like
// a running relay); the relay's status file (relay-status.ts) gives the bound
// ports and the delivery thread's health; each SMTP listener must answer with a
// 220 greeting and each web listener's /healthz with 200; the store gives the queue.
// Exit 0 when all of it holds, 1 when anything does not (each line says what).
import { existsSync, readFileSync } from 'node:fs';
import { request } from 'node:https';
import { connect as tcpConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import type { Command } from 'commander';
import { STATUS_STALE_MS, statusFileOf, type RelayStatus } from '../relay-status.ts';
import { lockStoreFile, StoreInUseError } from '../store/sqlite/owner-lock.ts';
import type { QueueStats } from '../store/store.ts';
import { readConfig, withStore, type CliContext } from './context.ts';
import { CliError, EXIT } from './exit.ts';
import { formatDuration } from './time.ts';

/** How long one listener may take to greet or answer. */
const PROBE_TIMEOUT_MS = 3000;
/** With --wait, how often to look again. */
const RETRY_MS = 500;

export interface StatusCheck {
  readonly what: string;
  readonly ok: boolean;
  readonly detail: string;
}

export function registerStatus(program: Command, context: () => CliContext): void {
  program
    .command('status')
    .description('whether the relay runs and answers: store lock, listeners (SMTP 220, web /healthz), delivery thread, queue; exit 1 when anything is wrong')
    .option('--json', 'print the checks as JSON')
    .option('--wait <seconds>', 'look again until everything holds or this many seconds have passed (for service managers)', '0')
    .action(async (opts: { json?: boolean; wait: string }) => {
      const waitSeconds = Number(opts.wait);
      if (!Number.isFinite(waitSeconds) || waitSeconds < 0 || waitSeconds > 3600) throw new CliError(EXIT.USAGE, `--wait takes seconds from 0 to 3600, not "${opts.wait}"`);
      const config = readConfig(context());
      const deadline = Date.now() + waitSeconds * 1000;
      let checks = await relayStatus(config.store.path, (use) => withStore(config, use));
      while (!checks.every((c) => c.ok) && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
        checks = await relayStatus(config.store.path, (use) => withStore(config, use));
      }
      if (opts.json) console.log(JSON.stringify({ ok: checks.every((c) => c.ok), checks }, null, 2));
      else for (const c of checks) console.log(`${c.what.padEnd(22)} ${c.ok ? 'ok  ' : 'FAIL'}  ${c.detail}`);
      if (!checks.every((c) => c.ok)) process.exitCode = EXIT.FAILURE;
    });
}

/** Every check, in the order an operator reads them; stops early when the relay is not running. */
export async function relayStatus(storePath: string, withQueue: (use: (store: { queueStats(): Promise<QueueStats> }) => Promise<QueueStats>) => Promise<QueueStats>): Promise<StatusCheck[]> {
  if (!existsSync(storePath)) return [{ what: 'relay', ok: false, detail: `no store at ${storePath}: the relay has not run with this config` }];
  if (!isLocked(storePath)) return [{ what: 'relay', ok: false, detail: `not running (nothing holds ${storePath}.lock)` }];
  const status = readStatus(statusFileOf(storePath));
  const checks: StatusCheck[] = [];
  if (typeof status === 'string') return [{ what: 'relay', ok: false, detail: status }];
  const now = Date.now();
  const fresh = now - status.updatedAt < STATUS_STALE_MS;
  checks.push({
    what: 'relay',
    ok: fresh,
    detail: fresh ? `running, pid ${status.pid}, version ${status.version}, up ${formatDuration(now - status.startedAt)}` : `status not updated for ${formatDuration(now - status.updatedAt)} (pid ${status.pid} hung?)`,
  });
  checks.push({ what: 'delivery thread', ok: status.delivery.alive, detail: `${status.delivery.alive ? 'alive' : 'not running (being restarted?)'}, ${status.delivery.restarts} restart(s)` });
  for (const l of status.listeners) checks.push(await probeSmtp(l));
  for (const w of status.web) checks.push(await probeWeb(w));
  checks.push(await queueCheck(withQueue, now));
  return checks;
}

function isLocked(storePath: string): boolean {
  try {
    lockStoreFile(storePath).release();
    return false;
  } catch (err) {
    if (err instanceof StoreInUseError) return true;
    throw err;
  }
}

/** The status file, or why it cannot be used. */
function readStatus(path: string): RelayStatus | string {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    return `the store is locked but ${path} cannot be read (${(err as Error).message}): a relay older than this command, or one still starting`;
  }
  const s = parsed as Partial<RelayStatus>;
  if (typeof s.pid !== 'number' || typeof s.updatedAt !== 'number' || !Array.isArray(s.listeners) || !Array.isArray(s.web) || typeof s.delivery?.alive !== 'boolean') {
    return `${path} is not a status file`;
  }
  return s as RelayStatus;
}

/** A wildcard bind is reached on loopback. */
const reachable = (host: string) => (host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host);

/** Connects as a client would and waits for the greeting (over TLS first for an implicit-TLS listener). */
function probeSmtp(l: RelayStatus['listeners'][number]): Promise<StatusCheck> {
  const what = `smtp ${l.name}`;
  const where = `${l.host}:${l.port} (${l.tls})`;
  const started = Date.now();
  return new Promise((resolve) => {
    const host = reachable(l.host);
    // Our own listener: its certificate is not what is checked here, its answer is.
    const socket: Socket = l.tls === 'implicit' ? tlsConnect({ host, port: l.port, rejectUnauthorized: false }) : tcpConnect({ host, port: l.port });
    let text = '';
    const done = (ok: boolean, detail: string) => {
      socket.destroy();
      resolve({ what, ok, detail: `${where}: ${detail}` });
    };
    socket.setTimeout(PROBE_TIMEOUT_MS, () => done(false, `no greeting within ${PROBE_TIMEOUT_MS} ms`));
    socket.on('error', (err) => done(false, err.message));
    socket.on('data', (chunk: Buffer) => {
      text += chunk.toString('latin1');
      const line = text.split('\r\n')[0]!;
      if (!text.includes('\r\n')) return;
      if (/^220[ -]/.test(line)) {
        socket.write('QUIT\r\n');
        done(true, `220 in ${Date.now() - started} ms`);
      } else done(false, `answered "${line.slice(0, 80)}"`);
    });
  });
}

function probeWeb(w: RelayStatus['web'][number]): Promise<StatusCheck> {
  const what = `web ${w.name}`;
  return new Promise((resolve) => {
    const url = new URL('/healthz', w.url);
    url.hostname = reachable(url.hostname.replace(/^\[|\]$/g, ''));
    const req = request(url, { rejectUnauthorized: false, timeout: PROBE_TIMEOUT_MS }, (res) => {
      res.resume();
      resolve({ what, ok: res.statusCode === 200, detail: `${w.url}/healthz: HTTP ${res.statusCode}` });
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${PROBE_TIMEOUT_MS} ms`)));
    req.on('error', (err) => resolve({ what, ok: false, detail: `${w.url}/healthz: ${err.message}` }));
    req.end();
  });
}

async function queueCheck(withQueue: Parameters<typeof relayStatus>[1], now: number): Promise<StatusCheck> {
  try {
    const q = await withQueue((s) => s.queueStats());
    const oldest = q.oldestReceivedAt === null ? 'empty' : `oldest ${formatDuration(now - q.oldestReceivedAt)}`;
    return { what: 'queue', ok: true, detail: `${q.messages} message(s), ${q.recipients} recipient(s) waiting, ${q.held} held; ${oldest}` };
  } catch (err) {
    return { what: 'queue', ok: false, detail: `store cannot be read: ${(err as Error).message}` };
  }
}
