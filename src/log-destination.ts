// Where the relay's log lines go: pino's asynchronous SonicBoom on stdout, made to
// survive the destination failing — a full disk (ENOSPC), a pipe whose reader went
// away (EPIPE), a file system that errors. pino's own handler rethrows such an
// error: an unhandled 'error' event kills the relay, and pino's exit hook then
// retries the write every 100 ms for ever, so the process never ends and its
// clients hang.
//
// Here instead the relay carries on serving. Lines wait in SonicBoom's buffer, up
// to `backlogBytes`; past that SonicBoom drops them ('drop'), and each is counted.
// The failure is said once, at error level, on the other stream (stderr), where it
// can still be read. Every new line, and a nudge each second, tries the destination
// again; once the backlog is written ('drain'), `log.resumed` says so in the log
// and on stderr, with how many lines were lost.
import { pino } from 'pino';
import { createLogger } from './log.ts';

export type LogDestination = ReturnType<typeof pino.destination>;

/** While the destination fails, it is tried again this often even when nothing is logged, in ms. */
const RETRY_MS = 1000;
/** Bound on what waits for the fallback stream when it fails too (a few lines per episode). */
const FALLBACK_BACKLOG_BYTES = 64 * 1024;

interface Trouble {
  readonly since: number;
  /** errno code of the first failed write (ENOSPC, EPIPE…), or 'backlog' when lines were dropped for want of room alone. */
  readonly code: string;
  lost: number;
  retry: NodeJS.Timeout;
}

/** `backlogBytes`: logging.backlog_bytes. The log goes to `fd` (stdout), its failures to `fallbackFd` (stderr). */
export function openLogDestination(opts: { backlogBytes: number; fd?: number; fallbackFd?: number }): LogDestination {
  const { backlogBytes } = opts;
  const fd = opts.fd ?? 1;
  // Written from libuv's thread pool: a write held up by the file system (say,
  // behind the store's fsync) never stalls the SMTP sessions.
  const destination = pino.destination({ dest: fd, sync: false, maxLength: backlogBytes });
  return survive(destination, { backlogBytes, where: { fd }, fallbackFd: opts.fallbackFd ?? (fd === 2 ? 1 : 2) });
}

/**
 * Makes an asynchronous SonicBoom (`maxLength` set to the backlog) survive its
 * destination failing, as above. `where` names it in the log.* lines: `{ fd }` for
 * stdout, `{ file }` for a log file (log-file.ts).
 */
export function survive(destination: LogDestination, opts: { backlogBytes: number; where: { fd: number } | { file: string }; fallbackFd: number }): LogDestination {
  const { backlogBytes, where } = opts;
  const named = 'fd' in where ? `fd ${where.fd}` : where.file;
  // pino's handler would give up for good on EPIPE (writes become no-ops, nothing is
  // counted) and rethrow anything else; ours below replaces it.
  destination.removeAllListeners('error');
  const here = createLogger('info', destination);
  const elsewhere = createLogger('info', fallbackDestination(opts.fallbackFd));

  let trouble: Trouble | null = null;
  const begin = (code: string, detail: string): Trouble => {
    // An empty write makes SonicBoom try its waiting lines again (flush() does nothing without minLength).
    const retry = setInterval(() => destination.write(''), RETRY_MS);
    retry.unref();
    trouble = { since: Date.now(), code, lost: 0, retry };
    elsewhere.error(
      { event: 'log.failed', ...where, code, backlogBytes },
      `cannot write the log to ${named} (${detail}): lines wait in memory up to ${backlogBytes} bytes, then are dropped and counted, until it can be written again`,
    );
    return trouble;
  };
  destination.on('error', (err: NodeJS.ErrnoException) => {
    trouble ??= begin(err.code ?? 'EIO', err.message);
  });
  destination.on('drop', () => {
    trouble ??= begin('backlog', `more than ${backlogBytes} bytes of log lines waiting`);
    trouble.lost += 1;
  });
  destination.on('drain', () => {
    if (!trouble) return;
    const { since, code, lost, retry } = trouble;
    trouble = null;
    clearInterval(retry);
    const fields = { event: 'log.resumed', ...where, code, lost, failedForMs: Date.now() - since };
    const text = `the log can be written again after ${fields.failedForMs} ms (${code}); ${lost} line(s) were lost`;
    here.warn(fields, text);
    elsewhere.warn(fields, text);
  });

  // Called before exit (start.ts) and by pino's exit hook. SonicBoom's flushSync
  // retries a failing write every 100 ms for ever: while the destination fails,
  // what still waits is given up instead, and stderr says so.
  const flushSync = destination.flushSync.bind(destination);
  let lostAtExit = false;
  destination.flushSync = () => {
    if (!trouble) return flushSync();
    if (lostAtExit) return;
    lostAtExit = true;
    elsewhere.error(
      { event: 'log.lost', ...where, code: trouble.code, lost: trouble.lost },
      `exiting while the log cannot be written (${trouble.code}): the lines still waiting in memory are lost, besides ${trouble.lost} dropped`,
    );
  };
  return destination;
}

/** The stream that hears about the log's failures; if it fails too, there is nowhere left to say so. */
function fallbackDestination(fd: number): LogDestination {
  const destination = pino.destination({ dest: fd, sync: true, maxLength: FALLBACK_BACKLOG_BYTES });
  destination.removeAllListeners('error');
  destination.on('error', () => undefined);
  return destination;
}
