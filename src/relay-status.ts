// The running relay's status file: `<store.path>.status`, JSON, rewritten every few
// seconds and removed on a clean stop. `sealrelay status` reads it to learn what it
// cannot see from outside — the bound ports (port 0 in the config), the web
// listeners, whether the delivery thread is alive — and trusts it only while the
// relay holds the store's owner lock and the file is fresh. It names no secret.
import { renameSync, rmSync, writeFileSync } from 'node:fs';

export interface RelayStatus {
  readonly pid: number;
  readonly version: string;
  /** ms since the epoch. */
  readonly startedAt: number;
  readonly updatedAt: number;
  readonly listeners: readonly { name: string; host: string; port: number; tls: string }[];
  readonly web: readonly { name: string; url: string }[];
  readonly delivery: { readonly alive: boolean; readonly restarts: number };
}

/** How often the file is rewritten; `sealrelay status` calls it stale after three misses. */
export const STATUS_INTERVAL_MS = 5000;
export const STATUS_STALE_MS = 3 * STATUS_INTERVAL_MS;

export const statusFileOf = (storePath: string): string => `${storePath}.status`;

/** Writes the file now and every STATUS_INTERVAL_MS until stopped; stopping removes it. */
export function startStatusFile(path: string, current: () => Omit<RelayStatus, 'updatedAt'>, intervalMs = STATUS_INTERVAL_MS): { stop(): void } {
  const write = () => {
    const partial = `${path}.${process.pid}.tmp`;
    try {
      writeFileSync(partial, JSON.stringify({ ...current(), updatedAt: Date.now() } satisfies RelayStatus), { mode: 0o644 });
      // A reader sees the old file or the new one, never half of one.
      renameSync(partial, path);
    } catch {
      // A full disk must not stop the relay; the file goes stale and status says so.
      rmSync(partial, { force: true });
    }
  };
  write();
  const timer = setInterval(write, intervalMs);
  timer.unref();
  return {
    stop() {
      clearInterval(timer);
      rmSync(path, { force: true });
    },
  };
}
