// `sealrelay config check [file]`: validate a config file the way `start` would
// (environment overrides included) without starting anything, so a change can be
// checked before SIGHUP or a restart: the YAML against the schema, then every file,
// key, certificate and detector it names (try-config.ts). Problems go to stderr as
// file:line:col: key: message.
import type { Command } from 'commander';
import { ConfigError, formatProblem, loadConfigFile, type ConfigProblem } from '../config/load.ts';
import { registerConfigShow } from './config-show.ts';
import type { CliContext } from './context.ts';
import { EXIT } from './exit.ts';

export function registerConfigCommands(program: Command, context: () => CliContext): void {
  const config = program.command('config').description('inspect the configuration');
  config
    .command('check [file]')
    .description('validate a config file and try every file, key and certificate it names (default: the one named by -c); exit 1 when it has problems')
    .option('--dev-cert', 'as `start --dev-cert` would: a missing certificate pair is generated at any path')
    .action(async (file: string | undefined, opts: { devCert?: boolean }) => {
      const ctx = context();
      const path = file ?? ctx.configFile;
      let problems: readonly ConfigProblem[];
      try {
        const loaded = loadConfigFile(path, ctx.env);
        const { tryConfig } = await import('./try-config.ts');
        problems = await tryConfig(loaded, { devCert: opts.devCert === true, env: ctx.env });
      } catch (err) {
        if (!(err instanceof ConfigError)) throw err;
        problems = err.problems;
      }
      if (problems.length) {
        for (const problem of problems) console.error(formatProblem(problem));
        process.exitCode = EXIT.FAILURE;
        return;
      }
      console.log(`OK: ${path}`);
    });
  registerConfigShow(config, context);
}
