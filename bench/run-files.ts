// The files of one bench run: its results file in the results directory, named by
// what ran and when it started, and a temp directory of its own that is removed
// however the run ends (cleanup.ts), unless the caller keeps it.
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { onCleanup } from './cleanup.ts';

/** A start time as results files are named: "2026-12-03T18-10-44Z" (no colons, no milliseconds). */
export function fileStamp(at: Date): string {
  return at.toISOString().replace(/\.\d+Z$/, 'Z').replace(/:/g, '-');
}

export interface RunFiles {
  readonly startedAt: Date;
  readonly resultFile: string;
  readonly work: string;
}

export function runFiles(opts: { out: string; name: string; tmpPrefix: string; keep: boolean; log: (line: string) => void }): RunFiles {
  const startedAt = new Date();
  mkdirSync(opts.out, { recursive: true });
  const resultFile = join(opts.out, `${opts.name}-${fileStamp(startedAt)}.json`);
  const work = mkdtempSync(join(tmpdir(), opts.tmpPrefix));
  if (!opts.keep) onCleanup('temp directory', () => rmSync(work, { recursive: true, force: true }));
  else opts.log(`keeping ${work}`);
  return { startedAt, resultFile, work };
}
