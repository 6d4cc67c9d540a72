import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { ConfigError } from '../../src/config/load.ts';
import { readUsersFile, removeUserEntry } from '../../src/config/users-file.ts';
import { addUser, authenticateUser, hashPassword, loadUsers, verifyPassword } from '../../src/ingress/users.ts';

const tempFile = (name = 'users.yaml') => join(mkdtempSync(join(tmpdir(), 'sealrelay-users-')), name);

describe('password hashes', () => {
  test('hash has the scrypt$N$r$p$salt$hash form and verifies', async () => {
    const hash = await hashPassword('correct horse', { N: 1024, r: 8, p: 1 });
    expect(hash).toMatch(/^scrypt\$1024\$8\$1\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$/);
    expect(await verifyPassword('correct horse', hash)).toBe(true);
    expect(await verifyPassword('correct horsf', hash)).toBe(false);
    expect(await verifyPassword('', hash)).toBe(false);
  });

  test('default parameters are N=2^15, r=8, p=1', async () => {
    expect(await hashPassword('x')).toMatch(/^scrypt\$32768\$8\$1\$/);
  });

  test('salts differ, so equal passwords give different hashes', async () => {
    const a = await hashPassword('same', { N: 1024, r: 8, p: 1 });
    const b = await hashPassword('same', { N: 1024, r: 8, p: 1 });
    expect(a).not.toBe(b);
  });

  test.each([
    ['not a hash', 'plaintext'],
    ['N not a power of two', 'scrypt$1000$8$1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA=='],
    ['N too large (DoS guard)', 'scrypt$67108864$8$1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA=='],
    ['N and r needing 1 GiB (DoS guard)', 'scrypt$1048576$8$1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA=='],
  ])('a malformed stored hash never matches: %s', async (_name, stored) => {
    expect(await verifyPassword('plaintext', stored)).toBe(false);
  });

  test('an unknown user is refused like a wrong password', async () => {
    const users = new Map([['app1', { name: 'app1', passwordHash: await hashPassword('pw', { N: 1024, r: 8, p: 1 }), requireTls: false }]]);
    expect(await authenticateUser(users, 'app1', 'pw')).toMatchObject({ name: 'app1' });
    expect(await authenticateUser(users, 'app1', 'nope')).toBeNull();
    expect(await authenticateUser(users, 'ghost', 'pw')).toBeNull();
  });
});

describe('users file', () => {
  test('a missing file is an empty directory', () => {
    expect(loadUsers(tempFile()).size).toBe(0);
  });

  test('addUser writes mode 0600, loadUsers reads it back, the password is not stored', async () => {
    const file = tempFile();
    await addUser(file, 'app1', 's3cret-pass', { requireTls: true });
    await addUser(file, 'app2', 'other', { requireTls: false });
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const text = readFileSync(file, 'utf8');
    expect(text).not.toContain('s3cret-pass');
    const users = loadUsers(file);
    expect([...users.keys()]).toEqual(['app1', 'app2']);
    expect(users.get('app1')?.requireTls).toBe(true);
    expect(users.get('app2')?.requireTls).toBe(false);
    expect(await verifyPassword('s3cret-pass', users.get('app1')!.passwordHash)).toBe(true);
  });

  test('addUser refuses a duplicate unless replace, and keeps comments', async () => {
    const file = tempFile();
    writeFileSync(file, '# accounts for the clinic apps\nusers:\n  app1:\n    password: "scrypt$1024$8$1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA=="\n');
    await expect(addUser(file, 'app1', 'new')).rejects.toThrow(/already exists/);
    await addUser(file, 'app1', 'new', { replace: true });
    const text = readFileSync(file, 'utf8');
    expect(text).toContain('# accounts for the clinic apps');
    expect(await verifyPassword('new', loadUsers(file).get('app1')!.passwordHash)).toBe(true);
  });

  test('require_tls defaults to true when the key is absent', () => {
    const file = tempFile();
    writeFileSync(file, 'users:\n  app1:\n    password: "scrypt$1024$8$1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA=="\n');
    expect(loadUsers(file).get('app1')?.requireTls).toBe(true);
  });

  test('an empty file or "users:" with nothing under it is an empty directory', () => {
    const a = tempFile();
    writeFileSync(a, '');
    expect(loadUsers(a).size).toBe(0);
    const b = tempFile();
    writeFileSync(b, 'users:\n');
    expect(loadUsers(b).size).toBe(0);
  });

  test.each([
    ['unknown key, with its line', 'users:\n  app1:\n    password: "scrypt$1024$8$1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA=="\n    requireTLS: true\n', /users\.yaml:4:5: users\.app1\.requireTLS: unknown key/],
    ['plaintext password', 'users:\n  app1:\n    password: hunter2\n', /users\.yaml:3:5: users\.app1\.password: expected a hash/],
    ['YAML syntax error', 'users:\n  app1: [\n', /users\.yaml:\d+:\d+:/],
    ['bad require_tls type', 'users:\n  app1:\n    password: "scrypt$1024$8$1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA=="\n    require_tls: maybe\n', /users\.yaml:4:5: users\.app1\.require_tls/],
    ['unknown top-level key', 'accounts: {}\n', /users\.yaml:1:1: accounts: unknown key/],
  ])('malformed: %s → file:line error', (_name, text, expected) => {
    const file = tempFile();
    writeFileSync(file, text);
    let caught: unknown;
    try {
      loadUsers(file);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    expect((caught as Error).message).toMatch(expected);
  });

  test('a scrypt hash with out-of-bounds parameters is refused at load, naming the user', () => {
    const file = tempFile();
    writeFileSync(file, 'users:\n  app1:\n    password: "scrypt$1000$8$1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA=="\n');
    expect(() => loadUsers(file)).toThrow(/users\.yaml: users\.app1\.password: scrypt N must be a power of two/);
  });

  test('user names are checked', async () => {
    await expect(addUser(tempFile(), 'bad name', 'pw')).rejects.toThrow(/not a valid user name/);
  });

  test('removeUserEntry', async () => {
    const file = tempFile();
    await addUser(file, 'app1', 'pw');
    expect(removeUserEntry(file, 'ghost')).toBe(false);
    expect(removeUserEntry(file, 'app1')).toBe(true);
    expect(readUsersFile(file)?.size).toBe(0);
  });
});
