// The relay's log in a file (logging.file) rather than on stdout, with the same
// survival as stdout (log-destination.ts): a full disk or a file system that errors
// never stops or hangs the relay.
//
// Two ways to rotate, both usual for operators:
// - logrotate (or any tool) moves the file away and sends SIGHUP (`systemctl reload`):
//   `reopenLog` opens the configured path again, a new file. Lines written meanwhile
//   went to the moved file, so nothing is lost.
// - logging.rotate: pino-roll (the pino author's own rotating file stream, a
//   SonicBoom) closes a file once it holds max_bytes or at each hour/day, and
//   begins NAME.<n+1>.log. The relay removes the oldest beyond `keep` itself, once
//   the new file is open: pino-roll's own removal reads the directory while its new
//   file may not be open yet (one file too many, or one too few, until the next
//   rotation), and without removeOtherLogFiles it forgets the files of an earlier run.
//
// Files are created with mode 0640 whatever the umask (they hold addresses): the
// owner writes, an operators' group (adm) may read, others nothing.
import { fchmod, readdir, unlink } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { pino } from 'pino';
import type { Config } from './config/schema.ts';
import { survive, type LogDestination } from './log-destination.ts';
import { createLogger, type Logger } from './log.ts';

const FILE_MODE = 0o640;

/** What SonicBoom's types leave out: the descriptor and path it has open. */
interface OpenFile {
  readonly fd: number;
  readonly file: string;
}

export interface LogFileOptions {
  readonly file: string;
  readonly backlogBytes: number;
  readonly rotate: Config['logging']['rotate'];
  /** Where the file's own failures are said (stderr). */
  readonly fallbackFd?: number;
  /** Rotation by a period in ms rather than hourly/daily: for tests. */
  readonly everyMs?: number;
}

/**
 * pino-roll is loaded only when the relay rotates its own log: it brings date-fns,
 * some 100 ms of start-up that every CLI command would pay otherwise.
 */
async function loadPinoRoll(): Promise<typeof import('pino-roll').default> {
  return (await import('pino-roll')).default;
}

export async function openLogFile(opts: LogFileOptions): Promise<LogDestination> {
  const { file, backlogBytes, rotate } = opts;
  // As on stdout: written from libuv's thread pool, the backlog bounded by maxLength.
  const sonic = { sync: false, maxLength: backlogBytes, mode: FILE_MODE, append: true, mkdir: false };
  const destination: LogDestination = rotate
    ? await (await loadPinoRoll())({
        ...sonic,
        file,
        // pino-roll reads a bare number as megabytes; 'b' is bytes.
        ...(rotate.max_bytes !== null && { size: `${rotate.max_bytes}b` }),
        ...((opts.everyMs ?? rotate.every) !== null && { frequency: opts.everyMs ?? rotate.every! }),
        symlink: false,
      })
    : pino.destination({ ...sonic, dest: file });
  const guarded = survive(destination, { backlogBytes, where: { file }, fallbackFd: opts.fallbackFd ?? 2 });
  // Each open (the first, a rotation, a reopen): the mode, whatever the umask; then the old files.
  const open = destination as unknown as OpenFile;
  destination.on('ready', () => {
    fchmod(open.fd, FILE_MODE, () => undefined);
    // Not a failure of the log itself: said on stderr, and the next rotation tries again.
    if (rotate) removeBeyond(open.file, rotate.keep, (err) => stderrLog(opts.fallbackFd ?? 2).error({ event: 'log.prune_failed', file, err: err.message }, 'cannot remove an old log file'));
  });
  return guarded;
}

/** SIGHUP: the file is opened again by its name (after logrotate moved it away). Stdout is left as it is. */
export function reopenLog(destination: LogDestination): void {
  if (!(destination as unknown as Partial<OpenFile>).file) return;
  // SonicBoom writes what waits to the old file first, then opens; a failure comes as 'error' (survive()).
  destination.reopen();
}

function stderrLog(fd: number): Logger {
  return createLogger('info', pino.destination({ dest: fd, sync: true }));
}

/** pino-roll names its files <base>.<n><.ext>: of those beside `current`, all but the `keep` highest numbers go. */
function removeBeyond(current: string, keep: number, failed: (err: Error) => void): void {
  const named = /^(.*)\.(\d+)(\.[^.]*)?$/.exec(basename(current));
  if (!named) return;
  const [, base, , ext = ''] = named;
  const dir = dirname(current);
  readdir(dir, (err, names) => {
    if (err) return failed(err);
    const numbered = names
      .map((name) => ({ name, n: numberOf(name, base!, ext) }))
      .filter((f): f is { name: string; n: number } => f.n !== null)
      .sort((a, b) => b.n - a.n);
    for (const old of numbered.slice(keep)) {
      unlink(join(dir, old.name), (e) => {
        if (e && e.code !== 'ENOENT') failed(e);
      });
    }
  });
}

function numberOf(name: string, base: string, ext: string): number | null {
  if (!name.startsWith(`${base}.`) || !name.endsWith(ext)) return null;
  const middle = name.slice(base.length + 1, name.length - ext.length);
  return /^\d+$/.test(middle) ? Number(middle) : null;
}
