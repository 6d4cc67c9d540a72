// `sealrelay user`: the users file gets a scrypt hash that verifies, never the
// password; a generated password is printed once; list and remove.
import { readFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readUsersFile } from '../../src/config/users-file.ts';
import { verifyPassword } from '../../src/ingress/users.ts';
import { lines, makeSandbox, runCli, type Sandbox } from './harness.ts';

let box: Sandbox;
beforeEach(() => {
  box = makeSandbox();
});
afterEach(() => box.cleanup());

const user = (args: string[], input?: string) => runCli(['-c', box.configFile, 'user', ...args], { input });

describe('sealrelay user', () => {
  it('add --password-stdin stores a scrypt hash of the first line, not the password', async () => {
    const password = 'correct horse battery staple';
    const res = await user(['add', 'app1', '--password-stdin'], `${password}\nsecond line is ignored\n`);
    expect(res).toMatchObject({ code: 0, stderr: '' });
    expect(res.stdout).toBe(`added user app1 in ${box.usersFile} (TLS required)\n`);
    const text = readFileSync(box.usersFile, 'utf8');
    expect(text).not.toContain(password);
    const entry = readUsersFile(box.usersFile)?.get('app1');
    expect(entry?.password).toMatch(/^scrypt\$/);
    expect(entry?.requireTls).toBe(true);
    expect(await verifyPassword(password, entry?.password ?? '')).toBe(true);
  });

  it('add without --password-stdin generates a 24-character password and prints it once', async () => {
    const res = await user(['add', 'app2', '--no-require-tls']);
    expect(res.code).toBe(0);
    const [added, shown, ...rest] = lines(res.stdout);
    expect(added).toBe(`added user app2 in ${box.usersFile} (TLS not required)`);
    expect(rest).toEqual([]);
    const password = /^password: ([A-Za-z0-9_-]{24})$/.exec(shown ?? '')?.[1] ?? '';
    expect(password).toHaveLength(24);
    expect(readFileSync(box.usersFile, 'utf8')).not.toContain(password);
    const entry = readUsersFile(box.usersFile)?.get('app2');
    expect(entry?.requireTls).toBe(false);
    expect(await verifyPassword(password, entry?.password ?? '')).toBe(true);
  });

  it('refuses an existing user unless --replace; list and remove', async () => {
    expect((await user(['add', 'app1', '--password-stdin'], 'first\n')).code).toBe(0);
    const again = await user(['add', 'app1', '--password-stdin'], 'second\n');
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('already exists');
    const replaced = await user(['add', 'app1', '--password-stdin', '--replace'], 'second\n');
    expect(replaced).toMatchObject({ code: 0, stdout: `set user app1 in ${box.usersFile} (TLS required)\n` });
    expect(await verifyPassword('second', readUsersFile(box.usersFile)?.get('app1')?.password ?? '')).toBe(true);

    const list = await user(['list']);
    expect(list.code).toBe(0);
    expect(lines(list.stdout)).toEqual(['NAME  REQUIRE TLS', 'app1  yes']);
    expect(list.stdout).not.toContain('scrypt');

    expect(await user(['remove', 'app1'])).toMatchObject({ code: 0, stdout: `removed user app1 from ${box.usersFile}\n` });
    expect(readUsersFile(box.usersFile)?.has('app1')).toBe(false);
    const gone = await user(['remove', 'app1']);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toContain('no user app1');
  });

  it('rejects an empty password on stdin and a bad name with exit 64, writing nothing', async () => {
    const empty = await user(['add', 'app1', '--password-stdin'], '');
    expect(empty.code).toBe(64);
    expect(empty.stderr).toContain('no password on stdin');
    const badName = await user(['add', 'no spaces please']);
    expect(badName.code).toBe(64);
    expect(readUsersFile(box.usersFile)).toBeNull();
  });
});
