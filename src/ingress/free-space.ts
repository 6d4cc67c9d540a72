// Free space on the store's file system, for the MAIL FROM check (Postfix's
// queue_minfree): a client is told 452 4.3.1 before it sends a message the store
// has no room for, rather than after. statfs is asked at most once per
// MAX_AGE_MS, and callers in between share that answer (or the call in flight),
// so a burst of MAIL commands makes one system call, not one each.
import { statfs } from 'node:fs/promises';
import type { SmtpError } from '../smtp-error.ts';
import { replies } from './replies.ts';

/** How long one reading of the free space is used, in ms. */
const MAX_AGE_MS = 1000;

export class FreeSpace {
  #reading: { at: number; bytes: Promise<number | null> } | null = null;

  constructor(
    /** A directory on the file system to watch (the store file's). */
    readonly dir: string,
    private readonly now: () => number = Date.now,
  ) {}

  /** Bytes an unprivileged writer may still use there (f_bavail), at most MAX_AGE_MS old; null when statfs fails. */
  bytes(): Promise<number | null> {
    const at = this.now();
    if (!this.#reading || at - this.#reading.at >= MAX_AGE_MS) {
      this.#reading = { at, bytes: statfs(this.dir).then((s) => s.bavail * s.bsize, () => null) };
    }
    return this.#reading.bytes;
  }
}

/**
 * 452 4.3.1 when `free` cannot hold `minfree` plus the message size the client
 * declared (RFC 1870 SIZE, 0 when absent), as Postfix's smtpd does; null otherwise,
 * and when the free space is unknown (the commit will tell).
 */
export function spaceRefusal(free: number | null, minfree: number, declaredSize: number): SmtpError | null {
  if (free === null) return null;
  return free < minfree + declaredSize ? replies.insufficientStorage('mail') : null;
}
