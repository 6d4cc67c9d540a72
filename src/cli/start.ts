// `sealrelay start`: run the relay in the foreground until a signal.
//
//   SIGTERM / SIGINT  stop accepting, let attempts in flight finish within
//                     delivery.shutdown_grace_seconds (relay.close), exit 0.
//                     A second signal exits 1 at once, for an operator who will not wait
//                     (one within a second of the first is the same stop delivered twice).
//   SIGHUP            re-read the config file; a config with problems is logged
//                     (relay.reload_failed) and the running config stays. A log
//                     file (logging.file) is opened again by its name first.
//
// Before starting (and before each reload) the config is tried as `config check`
// tries it (try-config.ts): a missing certificate, key or domains file is a config
// error naming its setting and line (exit 78), never a half-started relay. The
// development certificate pair is generated only under its own names
// (sealrelay-dev.crt/.key) unless --dev-cert asks for it at the configured paths.
//
// The relay module is imported only here and only when starting, so the other
// subcommands never load listeners, delivery or crypto code.
import type { Command } from 'commander';
import { lookAt, watchForEdits } from '../config/file-watch.ts';
import { ConfigError, formatProblem, loadConfigFile } from '../config/load.ts';
import type { Config } from '../config/schema.ts';
import { openLogDestination } from '../log-destination.ts';
import { openLogFile, reopenLog } from '../log-file.ts';
import { createLogger, type Logger } from '../log.ts';
import type { CliContext } from './context.ts';
import { CliError, EXIT } from './exit.ts';
import { tryConfig } from './try-config.ts';

/** Beyond the grace period, how long close() may still take before we give up and exit 1. */
// Ingress may spend up to 10 s draining DATA before delivery's grace period starts.
const CLOSE_SLACK_MS = 20_000;
/** A stop signal repeated within this long of the first is the same stop, not an operator's "now". */
const REPEAT_IGNORED_MS = 1000;
/** How often the config file is checked for edits, in ms. */
const CONFIG_POLL_MS = 1000;

export function registerStart(program: Command, context: () => CliContext): void {
  program
    .command('start')
    .description('run the relay in the foreground (SIGTERM/SIGINT stop it, SIGHUP reloads the config)')
    .option('--dev-cert', 'generate a self-signed development pair at ingress.cert_file/key_file when both are missing, whatever their names')
    .action(async (opts: { devCert?: boolean }) => {
      const ctx = context();
      const devCert = opts.devCert === true;
      // The file as it was when read: an edit made while the relay starts is still an edit.
      const loaded = lookAt(ctx.configFile);
      const config = await readAndTry(ctx, devCert);
      // Asynchronous, and a log that cannot be written (full disk, closed pipe) never
      // stops the relay: it says so on stderr and catches up later (log-destination.ts).
      // Likewise a log file (logging.file, log-file.ts); SIGHUP reopens it, for logrotate.
      const { file, rotate, backlog_bytes: backlogBytes } = config.logging;
      const destination = file === null ? openLogDestination({ backlogBytes }) : await openLogFile({ file, rotate, backlogBytes });
      const logger = createLogger(config.logging.level, destination);
      const exit = (code: number): never => {
        destination.flushSync();
        process.exit(code);
      };
      const { startRelay } = await import('../relay.ts');
      let relay: Awaited<ReturnType<typeof startRelay>>;
      // A stop asked for while the relay starts (it may already have said relay.started)
      // is kept and honoured once it runs, never met by the default action (death).
      let early: NodeJS.Signals | null = null;
      const keep = (signal: NodeJS.Signals) => (early ??= signal);
      // A SIGHUP then is a reload asked for: it runs once the relay does.
      let reloadAsked = false;
      const notYet = () => (reloadAsked = true);
      process.on('SIGTERM', keep).on('SIGINT', keep).on('SIGHUP', notYet);
      try {
        relay = await startRelay({ config, configFile: ctx.configFile, logger, devCert, env: ctx.env });
      } catch (err) {
        if (err instanceof ConfigError) throw err;
        throw new CliError(EXIT.FAILURE, `cannot start: ${(err as Error).message}`);
      }
      // relay.ts logs relay.started with the bound listeners.

      let graceSeconds = config.delivery.shutdown_grace_seconds;
      let stoppingSince: number | null = null;
      const stop = (signal: NodeJS.Signals) => {
        if (stoppingSince !== null) {
          // The same stop often arrives twice at once (a terminal's Ctrl-C and npm forwarding it,
          // systemd signalling the whole group): only a later one means "do not wait".
          if (Date.now() - stoppingSince < REPEAT_IGNORED_MS) return;
          logger.warn({ event: 'relay.stopped', signal }, 'second signal: exiting without waiting');
          exit(EXIT.FAILURE);
        }
        stoppingSince = Date.now();
        logger.info({ event: 'relay.stopping', signal, graceSeconds }, 'stopping: finishing attempts in flight');
        // relay.close() keeps to the grace period itself; this only catches a close that hangs.
        setTimeout(() => {
          logger.error({ event: 'relay.stopped', graceSeconds }, 'close did not finish in time; exiting');
          exit(EXIT.FAILURE);
        }, graceSeconds * 1000 + CLOSE_SLACK_MS).unref();
        relay.close().then(
          () => {
            logger.info({ event: 'relay.stopped' }, 'stopped');
            exit(EXIT.OK);
          },
          (err: unknown) => {
            logger.error({ event: 'relay.stopped', err }, 'error while stopping');
            exit(EXIT.FAILURE);
          },
        );
      };

      // Reloads run one after another: a burst of SIGHUPs never interleaves two reloads.
      let reloads = Promise.resolve();
      const reload = async () => {
        if (stoppingSince !== null) return;
        const next = await loadForReload(ctx, devCert, logger);
        if (!next) return;
        try {
          await relay.reload(next);
        } catch (err) {
          logger.error({ event: 'relay.reload_failed', err }, 'reload failed; the running config stays');
          return;
        }
        logger.level = next.logging.level;
        graceSeconds = next.delivery.shutdown_grace_seconds;
        logger.info({ event: 'relay.reloaded', configFile: ctx.configFile }, 'config reloaded');
      };

      process.off('SIGTERM', keep).off('SIGINT', keep).off('SIGHUP', notYet);
      process.on('SIGTERM', stop);
      process.on('SIGINT', stop);
      if (early) stop(early);
      else if (reloadAsked) reloads = reloads.then(reload);
      process.on('SIGHUP', () => {
        // At once, whatever the config: logrotate has just moved the file away.
        reopenLog(destination);
        reloads = reloads.then(reload);
      });
      // Editing the config file reloads it too (an invalid edit is refused, as on SIGHUP);
      // an edit made since the file was read, even during start, counts.
      watchForEdits(ctx.configFile, loaded, CONFIG_POLL_MS, () => {
        reloads = reloads.then(reload);
      });
    });
}

/** The config, loaded and tried; a ConfigError with every problem otherwise. */
async function readAndTry(ctx: CliContext, devCert: boolean): Promise<Config> {
  const loaded = loadConfigFile(ctx.configFile, ctx.env);
  const problems = await tryConfig(loaded, { devCert, env: ctx.env });
  if (problems.length) throw new ConfigError(problems);
  return loaded.config;
}

async function loadForReload(ctx: CliContext, devCert: boolean, logger: Logger): Promise<Config | null> {
  try {
    return await readAndTry(ctx, devCert);
  } catch (err) {
    if (!(err instanceof ConfigError)) {
      logger.error({ event: 'relay.reload_failed', err }, 'reload failed; the running config stays');
      return null;
    }
    logger.error(
      { event: 'relay.reload_failed', configFile: ctx.configFile, problems: err.problems.map(formatProblem) },
      'config has problems; the running config stays',
    );
    return null;
  }
}
