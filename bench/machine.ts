// machine: what the figures were measured on, written into every results file.
// Throughput on a 2-core box says little without the box, the runtime and the
// exact Postfix it was compared with.
import { execFileSync } from 'node:child_process';
import os from 'node:os';
import Database from 'better-sqlite3';

export interface MachineInfo {
  nproc: number;
  cpuModel: string;
  memoryBytes: number;
  kernel: string;
  node: string;
  openssl: string;
  sqlite: string;
  postfix: string | null;
  /** Commit of the tree measured, with "+dirty" when it has uncommitted changes. */
  commit: string | null;
}

export function machineInfo(root: string): MachineInfo {
  return {
    nproc: os.availableParallelism(),
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    memoryBytes: os.totalmem(),
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
    openssl: process.versions.openssl ?? 'unknown',
    sqlite: sqliteVersion(),
    postfix: quiet('dpkg-query', ['-W', '-f=${Version}', 'postfix']),
    commit: gitCommit(root),
  };
}

function sqliteVersion(): string {
  const db = new Database(':memory:');
  try {
    return db.prepare('SELECT sqlite_version()').pluck().get() as string;
  } finally {
    db.close();
  }
}

function gitCommit(root: string): string | null {
  const head = quiet('git', ['-C', root, 'rev-parse', '--short', 'HEAD']);
  if (!head) return null;
  const dirty = quiet('git', ['-C', root, 'status', '--porcelain']);
  return dirty ? `${head}+dirty` : head;
}

function quiet(cmd: string, args: string[]): string | null {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', timeout: 10_000, stdio: ['ignore', 'pipe', 'ignore'] }).trim() || null;
  } catch {
    return null;
  }
}
