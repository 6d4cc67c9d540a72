// receiver-process: starts bench/receiver.ts as a child process and wraps its
// IPC in promises, every one with a timeout.
//
// The receiver's certificate comes from a CA made for this run (test/helpers/
// test-ca.ts). Its only name is 127.0.0.1 (CN and an IP SAN) because both relays
// reach it through a static route to that address: SealRelay's `verification: ca`
// checks the IP SAN, Postfix's `verify` level matches the CN against the nexthop.
// The CA file is what the relay under test is told to trust.
import { fork, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createTestCa } from '../test/helpers/test-ca.ts';
import { onCleanup } from './cleanup.ts';
import { treeCpuMs } from './proc-stats.ts';
import type { ReceiverMessage, ReceiverReport, ReceiverRequest } from './receiver.ts';

const RECEIVER = fileURLToPath(new URL('./receiver.ts', import.meta.url));
/** tsx's ESM loader, resolved here so the child finds it whatever its cwd. */
const TSX_LOADER = import.meta.resolve('tsx');
const READY_TIMEOUT_MS = 20_000;
const REPORT_TIMEOUT_MS = 10_000;

export interface ReceiverTls {
  /** PEM file of the CA that issued the receiver's certificate. */
  caFile: string;
  certFile: string;
  keyFile: string;
}

/** Makes a CA and a certificate for 127.0.0.1 in `dir`. */
export function makeReceiverTls(dir: string): ReceiverTls {
  const ca = createTestCa({ commonName: 'SealRelay bench CA' });
  const leaf = ca.issue({ commonName: '127.0.0.1', altNames: ['127.0.0.1'] });
  const files = { caFile: join(dir, 'bench-ca.pem'), certFile: join(dir, 'receiver.crt'), keyFile: join(dir, 'receiver.key') };
  writeFileSync(files.caFile, ca.certPem);
  writeFileSync(files.certFile, leaf.certPem);
  writeFileSync(files.keyFile, leaf.keyPem, { mode: 0o600 });
  return files;
}

/** The receiving MX of a run: this smtp-server sink, or a real Postfix (receiver-postfix.ts). */
export interface Receiver {
  /** What receives, for the results (e.g. "smtp-server sink", "postfix 3.7.11 (Maildir)"). */
  readonly name: string;
  readonly port: number;
  /** The root of the receiver's process tree. */
  readonly pid: number;
  /** CPU the receiver's processes have used so far, ms. */
  cpuMs(): number;
  /** Resolves with the epoch ms at which the n-th message landed, or null after timeoutMs. */
  landed(n: number, timeoutMs: number): Promise<number | null>;
  reset(): void;
  report(): Promise<ReceiverReport>;
  stop(): Promise<void>;
}

export async function startReceiver(tls: ReceiverTls): Promise<Receiver> {
  const child: ChildProcess = fork(RECEIVER, [tls.certFile, tls.keyFile], {
    execArgv: ['--import', TSX_LOADER],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const forget = onCleanup('receiver', () => child.kill('SIGKILL'));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const request = (r: ReceiverRequest) => {
    if (child.connected) child.send(r);
  };

  const next = <T extends ReceiverMessage['type']>(type: T, timeoutMs: number, accept: (m: Extract<ReceiverMessage, { type: T }>) => boolean = () => true) =>
    new Promise<Extract<ReceiverMessage, { type: T }> | null>((resolve) => {
      const onMessage = (m: ReceiverMessage) => {
        if (m.type !== type || !accept(m as Extract<ReceiverMessage, { type: T }>)) return;
        done(m as Extract<ReceiverMessage, { type: T }>);
      };
      const done = (value: Extract<ReceiverMessage, { type: T }> | null) => {
        clearTimeout(timer);
        child.off('message', onMessage);
        child.off('exit', onExit);
        resolve(value);
      };
      const onExit = () => done(null);
      const timer = setTimeout(() => done(null), timeoutMs);
      child.on('message', onMessage);
      child.once('exit', onExit);
    });

  const ready = await next('ready', READY_TIMEOUT_MS);
  if (!ready) {
    child.kill('SIGKILL');
    forget();
    throw new Error(`receiver did not start within ${READY_TIMEOUT_MS} ms`);
  }

  return {
    name: 'smtp-server sink',
    port: ready.port,
    pid: child.pid!,
    cpuMs: () => treeCpuMs(child.pid!),
    async landed(n, timeoutMs) {
      const reached = next('reached', timeoutMs, (m) => m.n === n);
      request({ type: 'expect', n });
      return (await reached)?.at ?? null;
    },
    reset: () => request({ type: 'reset' }),
    async report() {
      const answer = next('report', REPORT_TIMEOUT_MS);
      request({ type: 'report' });
      const got = await answer;
      if (!got) throw new Error('receiver did not report');
      return got.report;
    },
    async stop() {
      request({ type: 'stop' });
      const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(timer);
      forget();
    },
  };
}
