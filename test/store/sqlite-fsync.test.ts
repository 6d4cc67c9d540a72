// The queue commit is fsynced before the write resolves — before ingress says 250 —
// and only the commits that accept mail pay for an fsync. Observed, not inferred
// from a pragma: the store runs in a child process under strace (commit-phases.ts),
// and the trace shows the fsyncs of the store's WAL between the markers around each
// write. Accepting mail (an enqueue, a finish that queues a bounce, an operator's
// action) must sync; a claim, a settlement without a bounce and a staged part must
// not (sqlite-store.ts: a power loss may undo those, which means a retry, never a loss).
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..', '..');
const CHILD = join(import.meta.dirname, 'commit-phases.ts');
/** The marker prefix commit-phases.ts uses. */
const MARK = '/sealrelay-commit-phase/';
/** What the trace keeps: the syncs, the markers (access/faccessat) and the opens that tell the WAL's thread. */
const TRACED = 'trace=/^(fsync|fdatasync|access|faccessat2?|openat)$';

const FULL = ['enqueue', 'finish-with-bounce', 'enqueue-staged', 'operator-hold'];
const NORMAL = ['claim', 'finish-delivered', 'stage-part'];

/** Runs the phases under strace; for each phase, how many fsyncs of the store's WAL it made before it resolved. */
async function walSyncsByPhase(form: 'in-process' | 'threaded'): Promise<Record<string, number>> {
  const dir = mkdtempSync(join(tmpdir(), 'sealrelay-fsync-'));
  const db = join(dir, 'queue.db');
  const trace = join(dir, 'strace.txt');
  const args = ['-f', '-qq', '-y', '-o', trace, '-e', TRACED, process.execPath, '--import', 'tsx', CHILD, db, form];
  const { code, stderr } = await new Promise<{ code: number | null; stderr: string }>((resolve, reject) => {
    const child = spawn('strace', args, { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.once('error', (e: NodeJS.ErrnoException) =>
      reject(e.code === 'ENOENT' ? new Error('strace is not installed (npm run test:setup installs it)') : e),
    );
    child.once('exit', (exit) => resolve({ code: exit, stderr: err }));
  });
  if (code !== 0) throw new Error(`strace or the store child failed (exit ${code}): ${stderr}`);
  return countWalSyncs(readFileSync(trace, 'utf8'), `${db}-wal`);
}

/**
 * Reads an `strace -f -y` trace: the thread that opened the WAL first is the store's
 * own connection (the checkpoint thread opens it later, on its own descriptor);
 * each fsync/fdatasync of the WAL by that thread counts for the phase it started in.
 */
function countWalSyncs(text: string, wal: string): Record<string, number> {
  const lines = text.split('\n');
  const opener = lines.map((l) => /^(\d+)\s+openat\(.*"([^"]+)"/.exec(l)).find((m) => m?.[2] === wal)?.[1];
  if (!opener) throw new Error(`the trace never opens ${wal}`);
  const counts: Record<string, number> = {};
  let phase: string | null = null;
  for (const line of lines) {
    const marker = line.includes(`"${MARK}`) ? new RegExp(`"${MARK}([^/"]+)/(begin|end)"`).exec(line) : null;
    if (marker) {
      const [, name, edge] = marker as unknown as [string, string, 'begin' | 'end'];
      if (edge === 'begin') {
        phase = name;
        counts[name] = 0;
      } else {
        if (phase !== name) throw new Error(`phase ${name} ended while ${phase} was open`);
        phase = null;
      }
      continue;
    }
    const sync = /^(\d+)\s+(?:fsync|fdatasync)\(\d+<([^>]*)>/.exec(line);
    if (sync && phase && sync[1] === opener && sync[2] === wal) counts[phase]! += 1;
  }
  return counts;
}

const verdict = (syncs: number | undefined) => (syncs === undefined ? 'not run' : syncs > 0 ? 'fsynced' : 'not fsynced');

it('in-process: enqueue, a bounce, staged parts made durable and operator actions fsync the WAL before they resolve; claims and plain settlements do not', async () => {
  const syncs = await walSyncsByPhase('in-process');
  const seen = Object.fromEntries([...FULL, ...NORMAL].map((p) => [p, verdict(syncs[p])]));
  expect(seen).toEqual({
    ...Object.fromEntries(FULL.map((p) => [p, 'fsynced'])),
    ...Object.fromEntries(NORMAL.map((p) => [p, 'not fsynced'])),
  });
}, 60_000);

it("the relay's form (the store in its own thread): every commit that accepts mail is fsynced before it resolves", async () => {
  // Only the FULL side here: the checkpoint thread may empty the WAL between phases, and the
  // next commit then rewrites the WAL header with a sync even at NORMAL (SQLite's WAL restart).
  const syncs = await walSyncsByPhase('threaded');
  expect(Object.fromEntries(FULL.map((p) => [p, verdict(syncs[p])]))).toEqual(Object.fromEntries(FULL.map((p) => [p, 'fsynced'])));
}, 60_000);
