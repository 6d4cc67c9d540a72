// Exit codes of the `sealrelay` command, after sysexits.h so that init systems and
// scripts can tell "you typed it wrong" from "the config is wrong" from "it failed":
//
//   0   EX_OK        success (also --help and --version)
//   1   failure      the command ran and the answer is "no": config check found
//                    problems, unknown queue id, no store at store.path, the relay
//                    could not start (port in use, ...), a second stop signal
//   64  EX_USAGE     bad arguments: unknown command or option, invalid --outcome,
//                    --since, --limit, empty password on stdin
//   65  EX_DATAERR   the input is refused (sendmail: too large, NUL, bare CR, bad header address)
//   70  EX_SOFTWARE  an unexpected error (a bug): the stack goes to stderr
//   75  EX_TEMPFAIL  try again later; nothing was done (sendmail: the store is unavailable)
//   78  EX_CONFIG    the configuration is invalid (start, log, queue, user)

export const EXIT = {
  OK: 0,
  FAILURE: 1,
  USAGE: 64,
  DATAERR: 65,
  SOFTWARE: 70,
  TEMPFAIL: 75,
  CONFIG: 78,
} as const;
export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** An expected failure: main prints `sealrelay: <message>` to stderr and exits with `exitCode`. */
export class CliError extends Error {
  readonly exitCode: ExitCode;
  constructor(exitCode: ExitCode, message: string) {
    super(message);
    this.name = 'CliError';
    this.exitCode = exitCode;
  }
}
