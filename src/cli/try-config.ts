// Everything `start` reads besides the YAML, tried without starting anything: the
// submission certificate pair, the users file, each rule's recipient_domains_file,
// the CA bundles, every crypto and DKIM key (put through a probe message, as the
// delivery thread does), the policy and DLP detectors, and the store's directory.
// `config check` prints what this finds; `start` and reloads refuse a config with
// any of it, so a config that passes the check is one start accepts.
//
// Each problem names the setting and its line (through LoadedConfig.problem). The
// heavy modules (crypto, forge, policy) are imported only when a check runs, so the
// other subcommands do not load them.
import { X509Certificate } from 'node:crypto';
import { accessSync, constants, existsSync, readFileSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { ConfigError, type ConfigProblem, type Env, type LoadedConfig, type SettingPath } from '../config/load.ts';
import type { Config } from '../config/schema.ts';
import { domainsFileEntries } from '../policy/domains-file.ts';

export interface TryOptions {
  /** As `start --dev-cert`: a missing certificate pair would be generated whatever its names. */
  readonly devCert?: boolean;
  /** The environment the portal's master keys may be read from (as start reads them). */
  readonly env?: Env;
}

export async function tryConfig(loaded: LoadedConfig, opts: TryOptions = {}): Promise<ConfigProblem[]> {
  const { config } = loaded;
  const problems: ConfigProblem[] = [];
  /** Runs one check; an error it throws becomes a problem of `setting` (the message without a repeated setting name). */
  const attempt = async (setting: SettingPath, check: () => unknown): Promise<void> => {
    try {
      await check();
    } catch (err) {
      if (err instanceof ConfigError) problems.push(...err.problems);
      else problems.push(loaded.problem(withSetting(err).setting ?? setting, withSetting(err).reason));
    }
  };

  const { certificateProblems } = await import('../ingress/dev-cert.ts');
  for (const p of certificateProblems(config.ingress.cert_file, config.ingress.key_file, { anyPath: opts.devCert === true })) {
    problems.push(loaded.problem(p.setting, withSetting(p).reason));
  }
  const { loadUsers } = await import('../ingress/users.ts');
  await attempt(['ingress', 'users_file'], () => loadUsers(config.ingress.users_file));
  const ruleFiles = ruleFileProblems(loaded);
  problems.push(...ruleFiles);
  for (const setting of ['tls.ca_file', 'mta_sts.ca_file', 'crypto.wkd.ca_file'] as const) {
    const file = setting.split('.').reduce<unknown>((node, key) => (node as Record<string, unknown>)[key], config);
    if (typeof file === 'string') await attempt(setting, () => checkCaBundle(file));
  }
  // The policy as the delivery thread builds it (it reads the rules' files: only once they read cleanly).
  const { createPolicy } = await import('../policy/decide.ts');
  if (!ruleFiles.length) await attempt(['policies'], () => createPolicy(config));
  const { dlpScannerFor } = await import('../policy/dlp/for-config.ts');
  await attempt(['dlp'], () => dlpScannerFor(config));
  // Each key on its own, so that every bad one is reported rather than the first.
  const { loadProtectionKeys } = await import('../crypto/protection.ts');
  for (const one of protectionSettingsOneByOne(config)) await attempt(['crypto'], () => loadProtectionKeys(one));
  // The portal's master keys, read and checked as the delivery thread and the portal read them.
  const { loadBodyKeyring, loadKeyring, MasterKeyError } = await import('../portal/master-keys.ts');
  // And the queue's body keys, as the store thread reads them.
  for (const load of [() => loadKeyring(config.portal, opts.env ?? {}), () => loadBodyKeyring(config.store, opts.env ?? {})]) {
    try {
      load();
    } catch (err) {
      if (!(err instanceof MasterKeyError)) throw err;
      problems.push(loaded.problem(err.path, err.reason));
    }
  }
  // The webhook signing secrets, read and checked as start reads them (never printed: only their length when short).
  const { webhookSecretProblems } = await import('../events/webhooks/signing.ts');
  for (const err of webhookSecretProblems(config.webhooks, opts.env ?? {})) problems.push(loaded.problem(err.path, err.reason));
  await attempt(['store', 'path'], () => checkStorePath(config.store.path));
  if (config.logging.file !== null) await attempt(['logging', 'file'], () => checkLogFile(config.logging.file!));
  return problems.sort((a, b) => (a.file === b.file ? (a.line ?? 0) - (b.line ?? 0) : a.file === loaded.file ? -1 : 1));
}

/**
 * Each rule's recipient_domains_file, read, with any line that is not a domain
 * (or *.domain) reported at its own line in that file. Commands that build the
 * policy (policy explain, check-domain) run this before it, so a missing file is
 * a config error rather than a crash.
 */
export function ruleFileProblems(loaded: LoadedConfig): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  loaded.config.policies.rules.forEach((rule, i) => {
    const file = rule.match.recipient_domains_file;
    if (file === undefined) return;
    const setting = ['policies', 'rules', i, 'match', 'recipient_domains_file'];
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      problems.push(loaded.problem(setting, `${file}: ${reasonOf(err)}`));
      return;
    }
    const key = loaded.problem(setting, '').key;
    for (const { entry, line, column } of domainsFileEntries(text)) {
      // Loose on purpose (IDNs, underscores): what it catches is an address, a stray word or a misplaced wildcard.
      if (!/^(\*\.)?[^\s@*]+$/.test(entry)) problems.push({ file, line, column, key, message: `not a domain or *.domain: ${JSON.stringify(entry)}` });
    }
  });
  return problems;
}

/** Throws ConfigError unless every rule's recipient_domains_file reads cleanly. */
export function requireRuleFiles(loaded: LoadedConfig): Config {
  const problems = ruleFileProblems(loaded);
  if (problems.length) throw new ConfigError(problems);
  return loaded.config;
}

/** A PEM bundle with at least one certificate, every one of which parses. */
function checkCaBundle(file: string): void {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new Error(`${file}: ${reasonOf(err)}`);
  }
  const blocks = text.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
  if (!blocks.length) throw new Error(`${file}: no PEM certificate in it`);
  blocks.forEach((pem, i) => {
    try {
      new X509Certificate(pem);
    } catch (err) {
      throw new Error(`${file}: certificate ${i + 1} does not parse: ${(err as Error).message}`);
    }
  });
}

/** The store file's directory exists (or can be made) and is writable; the file itself, if there, is a file. */
function checkStorePath(path: string): void {
  if (path === ':memory:') return;
  if (existsSync(path) && !statSync(path).isFile()) throw new Error(`${path}: not a file`);
  let dir = dirname(path);
  while (!existsSync(dir) && dirname(dir) !== dir) dir = dirname(dir);
  try {
    accessSync(dir, constants.W_OK);
  } catch {
    throw new Error(`${path}: cannot create or write in ${dir}`);
  }
}

/** The log file's directory exists (it is not made: a typo would log somewhere unwatched) and is writable; the file, if there, is a file. */
function checkLogFile(path: string): void {
  const dir = dirname(path);
  if (!existsSync(dir)) throw new Error(`${path}: directory ${dir} does not exist (create it, owned by the relay's user)`);
  if (!statSync(dir).isDirectory()) throw new Error(`${path}: ${dir} is not a directory`);
  if (existsSync(path) && !statSync(path).isFile()) throw new Error(`${path}: not a file`);
  // Rotation begins new files there; an existing file is appended to.
  for (const target of existsSync(path) ? [dir, path] : [dir]) {
    try {
      accessSync(target, constants.W_OK);
    } catch {
      throw new Error(`${path}: cannot write ${target === path ? 'the file' : `in ${dir}`}`);
    }
  }
}

/** The crypto and DKIM settings split so that each key file (or pair that goes together) is tried alone. */
function protectionSettingsOneByOne(config: Config): Pick<Config, 'crypto' | 'dkim'>[] {
  const { pgp, smime, wkd } = config.crypto;
  const none: Config['crypto'] = {
    ...config.crypto,
    pgp: { ...pgp, archive_key_file: null, signing_key_file: null, signing_passphrase_file: null },
    smime: { ...smime, archive_cert_file: null, signing_cert_file: null, signing_key_file: null },
    wkd: { ...wkd, ca_file: null },
  };
  const only = (crypto: Partial<Config['crypto']>, dkim: Config['dkim'] = { domains: {} }) => ({ crypto: { ...none, ...crypto }, dkim });
  const out: Pick<Config, 'crypto' | 'dkim'>[] = [];
  if (pgp.archive_key_file) out.push(only({ pgp: { ...none.pgp, archive_key_file: pgp.archive_key_file } }));
  if (pgp.signing_key_file) out.push(only({ pgp: { ...none.pgp, signing_key_file: pgp.signing_key_file, signing_passphrase_file: pgp.signing_passphrase_file } }));
  if (smime.archive_cert_file) out.push(only({ smime: { ...none.smime, archive_cert_file: smime.archive_cert_file } }));
  if (smime.signing_cert_file) out.push(only({ smime: { ...none.smime, signing_cert_file: smime.signing_cert_file, signing_key_file: smime.signing_key_file } }));
  for (const [domain, entry] of Object.entries(config.dkim.domains)) out.push(only({}, { domains: { [domain]: entry } }));
  return out;
}

/** The setting an error names itself (ProtectionConfigError, CertificateFileError) and its message without it. */
function withSetting(err: unknown): { setting: string | null; reason: string } {
  const message = err instanceof Error ? err.message : String(err);
  const setting = err instanceof Error && 'setting' in err && typeof err.setting === 'string' ? err.setting : null;
  return { setting, reason: setting && message.startsWith(`${setting}: `) ? message.slice(setting.length + 2) : message };
}

function reasonOf(err: unknown): string {
  return (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message;
}
