// What every subcommand is given instead of reading the process: the config file
// (from --config, else SEALRELAY_CONFIG, else config/sealrelay.yaml) and the
// environment, both captured once by main.ts, which is the only module that
// touches process.argv and process.env. Relative paths inside the config are
// resolved from the config file's directory by the loader (config/load.ts).
import { existsSync } from 'node:fs';
import { loadConfig, loadConfigFile, type Env } from '../config/load.ts';
import type { Config } from '../config/schema.ts';
import type { Keyring } from '../portal/master-keys.ts';
import { openStore } from '../store/open-store.ts';
import type { Store } from '../store/store.ts';
import { CliError, EXIT } from './exit.ts';
import { requireRuleFiles } from './try-config.ts';

export interface CliContext {
  readonly configFile: string;
  readonly env: Env;
}

/** Loads and validates the config; a ConfigError propagates and main exits 78 with its problems. */
export function readConfig(ctx: CliContext): Config {
  return loadConfig(ctx.configFile, ctx.env);
}

/** For commands that build the policy: also every rule's recipient_domains_file, so a missing one is a config error (78), not a crash. */
export function readPolicyConfig(ctx: CliContext): Config {
  return requireRuleFiles(loadConfigFile(ctx.configFile, ctx.env));
}

/**
 * Opens the configured store for one command and always closes it. A missing
 * SQLite file is an error rather than a new empty database: it almost always
 * means the wrong working directory or store.path, and an empty answer would hide that.
 */
export async function withStore<T>(config: Config, use: (store: Store) => Promise<T>, opts: { bodyKeys?: Keyring | null } = {}): Promise<T> {
  if (config.store.driver === 'sqlite' && config.store.path !== ':memory:' && !existsSync(config.store.path)) {
    throw new CliError(EXIT.FAILURE, `no store at ${config.store.path} (has the relay run with this config? check store.path)`);
  }
  const store = openStore(config.store, opts);
  try {
    return await use(store);
  } finally {
    await store.close();
  }
}
