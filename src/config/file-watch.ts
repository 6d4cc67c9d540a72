// Noticing that a file was edited: its size or modification time differs from the
// last look. Polled with our own timer rather than fs.watchFile, whose first look
// happens some time after the call (in libuv's thread pool): an edit made in that
// gap became its baseline and was never reported. Here the baseline is what the
// caller read, so no edit after that read can go unnoticed.
import { stat, statSync, type Stats } from 'node:fs';

export interface FileLook {
  readonly mtimeMs: number;
  readonly size: number;
}

/** The file's size and mtime now; null when it does not exist. */
export function lookAt(file: string): FileLook | null {
  const s = statSync(file, { throwIfNoEntry: false });
  return s ? { mtimeMs: s.mtimeMs, size: s.size } : null;
}

/**
 * Calls `onChange` whenever `file` looks different from `since` (then from the
 * previous change), checking at once and every `intervalMs`. A missing file is a
 * look of its own: deleting and recreating it are changes too. Returns stop().
 */
export function watchForEdits(file: string, since: FileLook | null, intervalMs: number, onChange: () => void): () => void {
  let seen = since;
  const check = (now: FileLook | null) => {
    if (now?.mtimeMs === seen?.mtimeMs && now?.size === seen?.size) return;
    seen = now;
    onChange();
  };
  let polling = false;
  const timer = setInterval(() => {
    if (polling) return;
    polling = true;
    stat(file, (err: NodeJS.ErrnoException | null, s: Stats) => {
      polling = false;
      check(err ? null : { mtimeMs: s.mtimeMs, size: s.size });
    });
  }, intervalMs);
  // Never keeps the process alive on its own.
  timer.unref();
  check(lookAt(file));
  return () => clearInterval(timer);
}
