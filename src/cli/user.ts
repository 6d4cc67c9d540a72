// `sealrelay user add|list|remove`: submission accounts in ingress.users_file.
//
// A password is read from the first line of stdin (--password-stdin, so it never
// sits in shell history or `ps`), or generated: 18 random bytes, 24 characters of
// base64url, printed once. Neither is ever logged; the file keeps only the scrypt
// hash made by ingress/users.ts. Accounts require TLS unless --no-require-tls.
import { randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { Command } from 'commander';
import { ConfigError } from '../config/load.ts';
import { readUsersFile, removeUserEntry, USER_NAME } from '../config/users-file.ts';
import { addUser } from '../ingress/users.ts';
import { readConfig, type CliContext } from './context.ts';
import { CliError, EXIT } from './exit.ts';
import { renderTable } from './table.ts';

/** 18 bytes = 144 bits of entropy = 24 base64url characters. */
const GENERATED_PASSWORD_BYTES = 18;

interface AddOptions {
  passwordStdin?: boolean;
  /** undefined: the users file's default (TLS required). */
  requireTls?: boolean;
  replace?: boolean;
}

export function registerUserCommands(program: Command, context: () => CliContext): void {
  const user = program.command('user').description('manage submission accounts (ingress.users_file)');

  user
    .command('add <name>')
    .description('add an account; prints a generated password unless --password-stdin')
    .option('--password-stdin', 'read the password from the first line of stdin')
    .option('--require-tls', 'the account may send only over TLS (the default)')
    .option('--no-require-tls', 'the account may also send without TLS (legacy applications)')
    .option('--replace', 'replace the account if it exists (e.g. to change its password)')
    .action(async (name: string, opts: AddOptions) => {
      checkName(name);
      const file = readConfig(context()).ingress.users_file;
      const generated = !opts.passwordStdin;
      const password = generated ? generatePassword() : await readFirstLine(process.stdin);
      if (!password) throw new CliError(EXIT.USAGE, 'no password on stdin (--password-stdin reads the first line)');
      try {
        await addUser(file, name, password, { requireTls: opts.requireTls, replace: opts.replace === true });
      } catch (err) {
        if (err instanceof ConfigError) throw err;
        throw new CliError(EXIT.FAILURE, `cannot add user ${name}: ${(err as Error).message}`);
      }
      const tls = opts.requireTls === false ? 'TLS not required' : 'TLS required';
      console.log(`${opts.replace ? 'set' : 'added'} user ${name} in ${file} (${tls})`);
      if (generated) console.log(`password: ${password}`);
    });

  user
    .command('list')
    .description('list accounts (names and TLS requirement; never hashes)')
    .action(() => {
      const file = readConfig(context()).ingress.users_file;
      const users = readUsersFile(file);
      if (!users?.size) {
        console.log(`no users in ${file}`);
        return;
      }
      const rows = [...users].sort(([a], [b]) => a.localeCompare(b)).map(([name, u]) => [name, u.requireTls ? 'yes' : 'no']);
      console.log(renderTable([{ header: 'NAME' }, { header: 'REQUIRE TLS' }], rows));
    });

  user
    .command('remove <name>')
    .description('remove an account; a running relay forgets it within seconds')
    .action((name: string) => {
      const file = readConfig(context()).ingress.users_file;
      if (!removeUserEntry(file, name)) throw new CliError(EXIT.FAILURE, `no user ${name} in ${file}`);
      console.log(`removed user ${name} from ${file}`);
    });
}

function checkName(name: string): void {
  if (!USER_NAME.test(name)) {
    throw new CliError(EXIT.USAGE, `not a valid user name: ${JSON.stringify(name)} (1-64 of A-Z a-z 0-9 . _ @ + -, starting with a letter or digit)`);
  }
}

export function generatePassword(): string {
  return randomBytes(GENERATED_PASSWORD_BYTES).toString('base64url');
}

/** The first line of a stream, without its line ending; '' when the stream is empty. */
export async function readFirstLine(input: Readable): Promise<string> {
  let text = '';
  for await (const chunk of input) {
    text += typeof chunk === 'string' ? chunk : (chunk as Buffer).toString('utf8');
    if (text.includes('\n')) break;
  }
  input.destroy();
  return (text.split('\n')[0] ?? '').replace(/\r$/, '');
}
