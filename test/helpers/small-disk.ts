/**
 * small-disk: a real file system of a few MiB (tmpfs mounted on a temp dir; needs
 * root, as the project's machines and CI run) that a test fills up and frees again,
 * for what the relay does when its disk is full. Nothing is faked: the relay's
 * writes there fail with ENOSPC from the kernel (SQLite turns that into SQLITE_FULL).
 */
import { execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, statfsSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface SmallDisk {
  readonly dir: string;
  /** Bytes an unprivileged writer may still use (f_bavail, as the relay reads it). */
  free(): number;
  /** Writes a filler file until the kernel says ENOSPC: nothing is left. */
  fill(): void;
  /** Removes the filler: the space is back. */
  release(): void;
  unmount(): void;
}

export function mountSmallDisk(bytes: number): SmallDisk {
  const dir = mkdtempSync(join(tmpdir(), 'sealrelay-small-disk-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${bytes},mode=0755`, 'tmpfs', dir]);
  const filler = join(dir, 'filler');
  return {
    dir,
    free() {
      const s = statfsSync(dir);
      return s.bavail * s.bsize;
    },
    fill() {
      const fd = openSync(filler, 'a');
      const chunk = Buffer.alloc(64 * 1024);
      try {
        // A short write takes the last bytes; the next one fails.
        for (;;) writeSync(fd, chunk);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
      } finally {
        closeSync(fd);
      }
    },
    release() {
      rmSync(filler, { force: true });
    },
    unmount() {
      // Lazy: a process that still holds a file there (a relay killed late) does not keep the mount.
      execFileSync('umount', ['--lazy', dir]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
