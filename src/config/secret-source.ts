// Reading a secret the config names by reference — a file or an environment
// variable, never the YAML — the one way for every kind of key (portal and queue
// master keys, webhook secrets, the tracking key). A key file must not be readable
// by group or others (as OpenSSH refuses such a private key): chmod 600. Errors come
// from the caller's `fail`, so each is placed at its own setting; none echoes the secret.
import { readFileSync, statSync } from 'node:fs';
import type { Env } from './load.ts';

/** Permission bits a key file may not have: any for group or others. */
const GROUP_OR_OTHER = 0o077;

export function readSecretFile(file: string, fail: (reason: string) => Error): string {
  let mode: number;
  let text: string;
  try {
    mode = statSync(file).mode;
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw fail(`${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`);
  }
  if (mode & GROUP_OR_OTHER) throw fail(`${file}: mode ${(mode & 0o777).toString(8).padStart(4, '0')} lets group or others read it; chmod 600 ${file}`);
  return text;
}

export function readSecretVariable(name: string, env: Env, fail: (reason: string) => Error): string {
  const value = env[name];
  if (value === undefined || value === '') throw fail(`environment variable ${name} is not set`);
  return value;
}
