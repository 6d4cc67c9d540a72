// One relay per SQLite file. A second relay on the same file would free the first
// one's leases at start (recoverInterrupted) and deliver its in-flight mail again.
// The relay holds an exclusive SQLite lock on a small file next to the database
// for as long as it runs: the kernel drops the lock when the process dies, so a
// crash never leaves a stale lock behind, and tools (`sealrelay queue`, `log`)
// that only open the database itself are not affected.
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';

export class StoreInUseError extends Error {
  constructor(readonly path: string) {
    super(`another relay is running on ${path} (it holds ${path}.lock); one relay per store file`);
    this.name = 'StoreInUseError';
  }
}

export interface OwnerLock {
  release(): void;
}

export function lockStoreFile(path: string): OwnerLock {
  mkdirSync(dirname(path), { recursive: true });
  // timeout 0: a held lock is an answer, not something to wait for.
  const db = new Database(`${path}.lock`, { timeout: 0 });
  try {
    db.pragma('locking_mode = EXCLUSIVE');
    db.exec('BEGIN EXCLUSIVE');
  } catch (err) {
    db.close();
    if ((err as { code?: string }).code === 'SQLITE_BUSY') throw new StoreInUseError(path);
    throw err;
  }
  let held = true;
  return {
    release() {
      if (!held) return;
      held = false;
      db.exec('ROLLBACK');
      db.close();
    },
  };
}
