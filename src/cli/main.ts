// The `sealrelay` command. This is the only module that reads process.argv and
// process.env: it captures them into a CliContext and hands that to the
// subcommands (one module each). Exit codes are listed in exit.ts.
import { Command, CommanderError } from 'commander';
import pkg from '../../package.json' with { type: 'json' };
import { ConfigError, formatProblem } from '../config/load.ts';
import { registerCheckDomain } from './check-domain.ts';
import { registerConfigCommands } from './config-check.ts';
import { registerDkimCommands } from './dkim.ts';
import { registerDomainCommands } from './domains.ts';
import { registerEvidenceCommands } from './evidence.ts';
import { registerKeyCommands } from './keys.ts';
import { registerPolicyCommands } from './policy.ts';
import { registerPortalCommands } from './portal.ts';
import { endQuietlyOnClosedPipe } from './closed-pipe.ts';
import type { CliContext } from './context.ts';
import { CliError, EXIT } from './exit.ts';
import { registerLog } from './log.ts';
import { stopWithParent } from './parent-watch.ts';
import { registerQueueCommands } from './queue.ts';
import { registerInit } from './init.ts';
import { registerStart } from './start.ts';
import { registerStatus } from './status.ts';
import { registerStoreCommands } from './store.ts';
import { registerUserCommands } from './user.ts';
import { registerTokenCommands } from './token.ts';
import { registerSuppressionCommands } from './suppression.ts';
import { registerReport } from './report.ts';
import { registerTlsRptCommands } from './tlsrpt.ts';
import { LINK_DEFAULT_CONFIG, registerSendmail, sendmailInvocation } from './sendmail.ts';
import { registerWebhookCommands } from './webhooks.ts';
import { registerAuditCommands } from './audit.ts';

const DEFAULT_CONFIG_FILE = 'config/sealrelay.yaml';

const env = process.env;
// Called as a `sendmail` or `mailq` link, or as `sealrelay sendmail`: those arguments follow sendmail's rules (sendmail.ts).
const invocation = sendmailInvocation(process.argv);
// `sealrelay queue list | head`: a reader that goes away ends any command quietly.
endQuietlyOnClosedPipe();
// npm sets this for the commands its scripts run (`npm start`): there, npm's shell
// stands between npm and us and never passes a stop on (parent-watch.ts).
if (env.npm_lifecycle_event) stopWithParent();
const program = new Command('sealrelay')
  .description('SealRelay: outbound SMTP relay with per-recipient encryption policy and a TLS floor')
  .version(pkg.version)
  .option('-c, --config <file>', 'config file (env SEALRELAY_CONFIG)', env.SEALRELAY_CONFIG || (invocation.sendmail?.viaLink ? LINK_DEFAULT_CONFIG : DEFAULT_CONFIG_FILE))
  .showHelpAfterError('(run with --help for usage)')
  // Subcommands inherit this: every usage error reaches the catch below and exits 64.
  .exitOverride();

const context = (): CliContext => ({ configFile: program.opts<{ config: string }>().config, env });

registerInit(program);
registerStart(program, context);
registerConfigCommands(program, context);
registerUserCommands(program, context);
registerLog(program, context);
registerEvidenceCommands(program, context);
registerQueueCommands(program, context);
registerStatus(program, context);
registerStoreCommands(program, context);
registerDomainCommands(program, context);
registerKeyCommands(program, context);
registerDkimCommands(program, context);
registerPortalCommands(program, context);
registerPolicyCommands(program, context);
registerCheckDomain(program, context);
registerReport(program, context);
registerTlsRptCommands(program, context);
registerTokenCommands(program, context);
registerWebhookCommands(program, context);
registerAuditCommands(program, context);
registerSuppressionCommands(program, context);
registerSendmail(program, context, invocation.sendmail?.args ?? []);

try {
  await program.parseAsync(invocation.argv);
} catch (err) {
  process.exitCode = exitCodeFor(err);
}

function exitCodeFor(err: unknown): number {
  if (err instanceof CommanderError) {
    // Commander has already printed the message (or the help/version text).
    return err.exitCode === 0 ? EXIT.OK : EXIT.USAGE;
  }
  if (err instanceof ConfigError) {
    for (const problem of err.problems) console.error(formatProblem(problem));
    return EXIT.CONFIG;
  }
  if (err instanceof CliError) {
    console.error(`sealrelay: ${err.message}`);
    return err.exitCode;
  }
  console.error('sealrelay: unexpected error:', err);
  return EXIT.SOFTWARE;
}

