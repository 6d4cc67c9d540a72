// `sealrelay sendmail` and `sealrelay mailq`, also run as `sendmail` and `mailq`
// through links (main.ts reads the name it was called by): the way PHP's mail(),
// cron and older programs hand a message over without SMTP.
//
// The message takes the same last steps as one sent by SMTP or the API: ingress's
// limits and line rules (sendmail-input.ts), its long-line repair, its hop and
// loop checks, our Received stamp ("with local", naming the OS user), and one
// durable Store.enqueue, which writes the queued events in the same transaction.
// The submitter is recorded as `local:<login>`, as the API records `token:<name>`.
// The running relay finds the message at its next poll of the store
// (delivery.poll_interval_ms); nothing here talks to the relay process.
//
// Exit codes are sendmail's (sysexits): 0 only once the message is committed; 75
// when the store cannot take it (missing, locked, newer schema, a failed commit),
// so the caller keeps the message and nothing is half queued; 65 for a message
// refused as SMTP ingress would refuse it; 64 for the command line.
import type { Command } from 'commander';
import type { CliContext } from './context.ts';
import { CliError, EXIT } from './exit.ts';
import { listQueue } from './queue.ts';
import { parseSendmailArgs, SENDMAIL_HELP, SendmailUsageError, type SendmailMode, type SendmailRequest } from './sendmail-args.ts';

/** Where the `sendmail` and `mailq` links look for the config when neither -C nor SEALRELAY_CONFIG names one: the install's place (deploy/sealrelay.service). */
export const LINK_DEFAULT_CONFIG = '/etc/sealrelay/sealrelay.yaml';

/**
 * How the process was called: as a `sendmail` or `mailq` link (by the name in
 * argv[1]), as `sealrelay sendmail …` / `sealrelay mailq …`, or otherwise. For the
 * first two, the sendmail arguments are taken out of `argv` here: they follow
 * sendmail's rules, which commander's cannot express (-oi, -fsender, -V envid).
 */
export function sendmailInvocation(argv: readonly string[]): { argv: string[]; sendmail: { mode: SendmailMode; args: string[]; viaLink: boolean } | null } {
  const name = (argv[1] ?? '').split(/[\\/]/).pop()?.replace(/\.js$/, '');
  if (name === 'sendmail' || name === 'mailq') {
    return { argv: [...argv.slice(0, 2), name], sendmail: { mode: name === 'mailq' ? 'mailq' : 'deliver', args: argv.slice(2), viaLink: true } };
  }
  // `sealrelay [-c file] sendmail …`: the subcommand is the first argument that is not the config option.
  for (let i = 2; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === '-c' || arg === '--config') {
      i++;
      continue;
    }
    if (arg.startsWith('--config=') || /^-c./.test(arg)) continue;
    if (arg.startsWith('-')) break;
    if (arg !== 'sendmail' && arg !== 'mailq') break;
    return { argv: argv.slice(0, i + 1), sendmail: { mode: arg === 'mailq' ? 'mailq' : 'deliver', args: argv.slice(i + 1), viaLink: false } };
  }
  return { argv: [...argv], sendmail: null };
}

export function registerSendmail(program: Command, context: () => CliContext, args: readonly string[]): void {
  program
    .command('sendmail')
    .description('queue a message read on stdin, as sendmail does (-t, -i, -f, -F; `sealrelay sendmail --help`)')
    .helpOption(false)
    .action(() => run(context(), args, 'deliver'));
  program
    .command('mailq')
    .description('list the queue (as `queue list`; also `sendmail -bp` and the mailq link)')
    .helpOption(false)
    .action(() => run(context(), args, 'mailq'));
}

async function run(ctx: CliContext, args: readonly string[], invokedAs: SendmailMode): Promise<void> {
  let request: SendmailRequest;
  try {
    request = parseSendmailArgs(args, invokedAs);
  } catch (err) {
    if (err instanceof SendmailUsageError) throw new CliError(EXIT.USAGE, err.message);
    throw err;
  }
  if (request.help) {
    process.stdout.write(SENDMAIL_HELP);
    return;
  }
  const context = request.configFile ? { ...ctx, configFile: request.configFile } : ctx;
  if (request.mode === 'mailq') {
    if (request.recipients.length) throw new CliError(EXIT.USAGE, 'mailq takes no arguments');
    return listQueue(context);
  }
  const { submit } = await import('./sendmail-submit.ts');
  const queueId = await submit(context, request, process.stdin);
  if (request.verbose) process.stderr.write(`sendmail: queued as ${queueId}\n`);
}
