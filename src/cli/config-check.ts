// `sealrelay config check [file]`: validate a config file the way `start` would
// (environment overrides included) without starting anything, so a change can be
// checked before SIGHUP or a restart. Problems go to stderr as file:line:col: key: message.
import type { Command } from 'commander';
import { ConfigError, formatProblem, loadConfig } from '../config/load.ts';
import type { CliContext } from './context.ts';
import { EXIT } from './exit.ts';

export function registerConfigCommands(program: Command, context: () => CliContext): void {
  const config = program.command('config').description('inspect the configuration');
  config
    .command('check [file]')
    .description('validate a config file (default: the one named by -c); exit 1 when it has problems')
    .action((file: string | undefined) => {
      const ctx = context();
      const path = file ?? ctx.configFile;
      try {
        loadConfig(path, ctx.env);
      } catch (err) {
        if (!(err instanceof ConfigError)) throw err;
        for (const problem of err.problems) console.error(formatProblem(problem));
        process.exitCode = EXIT.FAILURE;
        return;
      }
      console.log(`OK: ${path}`);
    });
}
