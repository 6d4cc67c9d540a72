// The sendmail command line, read as Postfix's sendmail reads it: getopt-style
// short options (combinable, `-fsender` or `-f sender`), options end at the first
// argument that is not one (POSIX), and what follows are recipients. What the
// flags mean is documented on `sealrelay sendmail --help` (SENDMAIL_HELP) and in
// the README. Options that other MTAs accept but that change nothing here are
// accepted and ignored, as Postfix does; modes this relay does not offer (an SMTP
// dialogue on stdin, a daemon, alias databases, queue runs) are refused by name,
// so a script learns at once that it needs another way.

export type SendmailMode = 'deliver' | 'mailq';

export interface SendmailRequest {
  readonly mode: SendmailMode;
  /** -t: recipients also from the To, Cc and Bcc fields. */
  readonly extractRecipients: boolean;
  /** False with -i / -oi: a line holding one dot is data, not the end of input. */
  readonly dotEndsInput: boolean;
  /** -f / -r as given (checked later); null: the default sender. */
  readonly sender: string | null;
  /** -F: the full name for a From field we add. */
  readonly fullName: string | null;
  /** -C: the config file (sendmail's and Postfix's meaning of -C). */
  readonly configFile: string | null;
  /** -N: RFC 3461 NOTIFY for every recipient, upper case; null: not given. */
  readonly notify: string | null;
  /** -V: RFC 3461 ENVID; null: not given. */
  readonly envid: string | null;
  /** Command-line recipients as given (each may be an address list). */
  readonly recipients: readonly string[];
  readonly help: boolean;
  /** -v: say the queue id on stderr (Postfix's -v logs more; this is the part a caller can use). */
  readonly verbose: boolean;
}

export class SendmailUsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SendmailUsageError';
  }
}

/** Options that take a value (`-xvalue` or `-x value`). */
const WITH_VALUE = new Set(['f', 'r', 'F', 'o', 'O', 'B', 'C', 'N', 'R', 'V', 'X', 'L', 'h', 'b', 'e', 'p', 'A']);
/** Flags that change nothing here (Postfix ignores them too: -n no aliasing, -m me too, -U initial submission, -G gateway, -c, -x). */
const IGNORED_FLAGS = new Set(['n', 'm', 'U', 'G', 'c', 'x']);
/** Values taken and ignored: -B body type (MIME says it), -R hdrs|full, -X log file, -L label, -h hop count, -e error mode, -p protocol, -A, -O option=value. */
const IGNORED_VALUES = new Set(['B', 'R', 'X', 'L', 'h', 'e', 'p', 'A', 'O']);
/** -b modes this command refuses, with what to use instead. */
const REFUSED_MODES: Readonly<Record<string, string>> = {
  s: 'an SMTP dialogue on stdin is not offered; submit by SMTP to the relay\'s listener instead',
  d: 'the relay runs as `sealrelay start` (a service), not as sendmail -bd',
  D: 'the relay runs as `sealrelay start` (a service), not as sendmail -bD',
  i: 'there is no alias database to rebuild',
  h: 'there is no host status to show',
  H: 'there is no host status to purge',
  v: 'address verification is not offered',
  t: 'address test mode is not offered',
  a: 'ARPANET mode is not offered',
  l: 'the relay runs as `sealrelay start`',
};
const NOTIFY_VALUES = new Set(['NEVER', 'SUCCESS', 'FAILURE', 'DELAY']);
/** RFC 3461 §4.4: ENVID is at most 100 characters of printable US-ASCII. */
const ENVID = /^[\x21-\x7e]{1,100}$/;

export function parseSendmailArgs(args: readonly string[], invokedAs: SendmailMode = 'deliver'): SendmailRequest {
  let mode: SendmailMode = invokedAs;
  let extractRecipients = false;
  let dotEndsInput = true;
  let sender: string | null = null;
  let fullName: string | null = null;
  let configFile: string | null = null;
  let notify: string | null = null;
  let envid: string | null = null;
  let help = false;
  let verbose = false;
  let i = 0;
  for (; i < args.length; i++) {
    const arg = args[i] as string;
    if (arg === '--') {
      i++;
      break;
    }
    if (arg === '--help' || arg === '-?') {
      help = true;
      continue;
    }
    if (!arg.startsWith('-') || arg === '-') break;
    if (arg.startsWith('--')) throw new SendmailUsageError(`unknown option ${arg}`);
    for (let j = 1; j < arg.length; j++) {
      const flag = arg[j] as string;
      if (!WITH_VALUE.has(flag)) {
        if (flag === 't') extractRecipients = true;
        else if (flag === 'i') dotEndsInput = false;
        else if (flag === 'v') verbose = true;
        else if (flag === 'q') throw new SendmailUsageError('-q: queue runs are the running relay\'s job; use `sealrelay queue flush`');
        else if (flag === 'I') throw new SendmailUsageError('-I: there is no alias database to rebuild');
        else if (!IGNORED_FLAGS.has(flag)) throw new SendmailUsageError(`-${flag}: unknown option`);
        continue;
      }
      // The rest of this argument is the value, else the next argument.
      let value = arg.slice(j + 1);
      if (value === '') {
        if (i + 1 >= args.length) throw new SendmailUsageError(`-${flag} needs a value`);
        value = args[++i] as string;
      }
      switch (flag) {
        case 'f':
        case 'r':
          sender = value;
          break;
        case 'F':
          fullName = value;
          break;
        case 'C':
          configFile = value;
          break;
        case 'o':
          // -oi is -i; -o7, -o8, -om, -oem, -odi, -oQ… change nothing here (Postfix ignores them).
          if (value === 'i') dotEndsInput = false;
          break;
        case 'b':
          mode = bMode(value, mode);
          break;
        case 'N':
          notify = notifyOf(value);
          break;
        case 'V':
          if (!ENVID.test(value)) throw new SendmailUsageError('-V: the envelope id must be 1 to 100 printable ASCII characters');
          envid = value;
          break;
        default:
          if (!IGNORED_VALUES.has(flag)) throw new SendmailUsageError(`-${flag}: unknown option`);
      }
      break;
    }
  }
  return { mode, extractRecipients, dotEndsInput, sender, fullName, configFile, notify, envid, recipients: args.slice(i), help, verbose };
}

function bMode(value: string, current: SendmailMode): SendmailMode {
  if (value === 'm') return 'deliver';
  if (value === 'p') return 'mailq';
  const why = REFUSED_MODES[value[0] ?? ''];
  throw new SendmailUsageError(`-b${value}: not supported: ${why ?? 'unknown mode'}${current === 'mailq' ? '' : ' (supported: -bm to send, -bp to list the queue)'}`);
}

/** -N never | a comma list of success, failure, delay (Postfix's spelling, any case). */
function notifyOf(value: string): string {
  const words = value.split(',').map((w) => w.trim().toUpperCase());
  if (!words.every((w) => NOTIFY_VALUES.has(w)) || (words.includes('NEVER') && words.length > 1)) {
    throw new SendmailUsageError('-N: give never, or a comma list of success, failure, delay');
  }
  return words.join(',');
}

export const SENDMAIL_HELP = `Usage: sendmail [options] [recipient ...]   (also: sealrelay sendmail …)
Reads one message (RFC 5322) on stdin and queues it in the relay's store.

  -t             recipients also from the To, Cc and Bcc fields (Bcc is removed)
  -i, -oi        a line holding only "." is data, not the end of the message
  -f sender      envelope sender (-r is the same); default: <login>@<server.hostname>
  -F fullname    full name for the From field added when the message has none
  -C file        the SealRelay config file (default: SEALRELAY_CONFIG)
  -N notify      DSN: never, or a list of success, failure, delay
  -V envid       DSN envelope id
  -bm            send (the default); -bp lists the queue (as mailq)
  -v             print the queue id on stderr
  -o…, -B, -R, -L, -X, -h, -e, -n, -m, -U   accepted and ignored

Exit: 0 queued, 64 usage, 65 message refused, 75 store unavailable (try again), 78 config invalid.
`;
