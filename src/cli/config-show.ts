// `sealrelay config show [-n]`: the configuration the relay would run with, as YAML —
// every setting with its default filled in (like `postconf`), or with -n only those
// the file and the environment set (like `postconf -n`). A setting that came from
// the environment says which variable set it. The config holds references to
// secrets (files, variable names), not secrets; anything that still looks like one
// (a password in a URL, an inline secret or token) is masked all the same.
import type { Command } from 'commander';
import { Document, type Node } from 'yaml';
import { loadConfigFile, type LoadedConfig } from '../config/load.ts';
import type { CliContext } from './context.ts';

export const MASK = '********';
/** Keys whose value is a secret itself (a name ending in _env or _file is only a reference). */
const SECRET_KEY = /(secret|password|passphrase|token|private_key)$/i;

export function registerConfigShow(config: Command, context: () => CliContext): void {
  config
    .command('show')
    .description('print the effective configuration as YAML: defaults filled in and environment overrides applied; secrets masked')
    .option('-n, --non-default', 'only the settings the file and the environment give (like postconf -n)')
    .action((opts: { nonDefault?: boolean }) => {
      const ctx = context();
      process.stdout.write(showConfig(loadConfigFile(ctx.configFile, ctx.env), { explicitOnly: opts.nonDefault === true }));
    });
}

/** The YAML text `config show` prints. */
export function showConfig(loaded: LoadedConfig, opts: { explicitOnly: boolean }): string {
  const value = maskSecrets(opts.explicitOnly ? loaded.explicit : loaded.config);
  const doc = new Document(value);
  doc.commentBefore = ` SealRelay configuration from ${loaded.file}${opts.explicitOnly ? ' (only what is set)' : ' (defaults filled in)'}`;
  for (const [setting, variable] of loaded.fromEnv) {
    const node = doc.getIn(setting.split('.'), true) as Node | undefined;
    if (node) node.comment = ` from ${variable}`;
  }
  return doc.toString({ lineWidth: 0 });
}

/** A copy of `value` with secrets replaced by MASK. */
export function maskSecrets(value: unknown, key = ''): unknown {
  if (Array.isArray(value)) return value.map((v) => maskSecrets(v, key));
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value as Record<string, unknown>).map(([k, v]) => [k, maskSecrets(v, k)]));
  }
  if (typeof value !== 'string') return value;
  if (SECRET_KEY.test(key) && value !== '') return MASK;
  return withoutUrlPassword(value);
}

/** "https://user:pw@host/x" → "https://user:********@host/x"; anything else unchanged. */
function withoutUrlPassword(value: string): string {
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(value)) return value;
  try {
    const url = new URL(value);
    if (!url.password) return value;
    url.password = MASK;
    return url.toString();
  } catch {
    return value;
  }
}
