// Submission accounts: password hashing and verification, and the in-memory
// directory ingress authenticates against.
//
// Passwords are stored as "scrypt$N$r$p$salt$hash" (RFC 7914 scrypt, parameters
// kept with each hash so they can be raised later without invalidating accounts).
// Verification compares in constant time, and an unknown user costs the same
// scrypt run as a known one, so timing does not reveal which accounts exist.
// The YAML itself is read and written by config/users-file.ts.
import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import { PASSWORD_HASH, readUsersFile, writeUserEntry } from '../config/users-file.ts';

export interface User {
  readonly name: string;
  readonly passwordHash: string;
  /** MAIL FROM is refused on a session without TLS. */
  readonly requireTls: boolean;
}

/** Accounts by name. Replaced whole on reload, never mutated. */
export type UserDirectory = ReadonlyMap<string, User>;

/**
 * N=2^15, r=8, p=1: 32 MiB and roughly 50-100 ms per check on a small server.
 * Higher N (OWASP suggests 2^17) would cost 128 MiB per concurrent AUTH, too much
 * for a relay that authenticates every application connection.
 */
const DEFAULT_PARAMS = { N: 2 ** 15, r: 8, p: 1 } as const;
const SALT_BYTES = 16;
const KEY_BYTES = 32;
/** Bounds on parameters read from the file: a typo must not turn one AUTH into a DoS. */
const MAX_N = 2 ** 20;
const MAX_R = 32;
const MAX_P = 16;
/** scrypt needs 128 * N * r bytes: one AUTH may not take more than this. */
const MAX_MEMORY_BYTES = 256 * 1024 * 1024;

interface ParsedHash {
  readonly N: number;
  readonly r: number;
  readonly p: number;
  readonly salt: Buffer;
  readonly hash: Buffer;
}

export function emptyDirectory(): UserDirectory {
  return new Map();
}

export async function hashPassword(password: string, params: { N: number; r: number; p: number } = DEFAULT_PARAMS): Promise<string> {
  if (password.length === 0) throw new Error('refusing an empty password');
  checkParams(params.N, params.r, params.p);
  const salt = randomBytes(SALT_BYTES);
  const hash = await derive(password, salt, KEY_BYTES, params);
  return ['scrypt', params.N, params.r, params.p, salt.toString('base64'), hash.toString('base64')].join('$');
}

/** True when `password` matches `stored`. A malformed stored hash never matches. */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  let parsed: ParsedHash;
  try {
    parsed = parseHash(stored);
  } catch {
    return false;
  }
  const actual = await derive(password, parsed.salt, parsed.hash.length, parsed);
  return actual.length === parsed.hash.length && timingSafeEqual(actual, parsed.hash);
}

let dummyHash: Promise<string> | null = null;

/**
 * Checks a user's password; an unknown user runs scrypt against a throwaway hash
 * so that it takes as long as a wrong password for a real one.
 */
export async function authenticateUser(users: UserDirectory, name: string, password: string): Promise<User | null> {
  const user = users.get(name);
  if (!user) {
    dummyHash ??= hashPassword(randomBytes(16).toString('hex'));
    await verifyPassword(password, await dummyHash);
    return null;
  }
  return (await verifyPassword(password, user.passwordHash)) ? user : null;
}

/** Loads the users file. A missing file is an empty directory; a malformed one throws (file:line). */
export function loadUsers(file: string): UserDirectory {
  const entries = readUsersFile(file);
  const users = new Map<string, User>();
  for (const [name, entry] of entries ?? []) {
    try {
      parseHash(entry.password);
    } catch (err) {
      throw new Error(`${file}: users.${name}.password: ${(err as Error).message}`);
    }
    users.set(name, { name, passwordHash: entry.password, requireTls: entry.requireTls });
  }
  return users;
}

/** Adds an account to the users file; refuses an existing name unless `replace`. */
export async function addUser(
  file: string,
  name: string,
  password: string,
  opts: { requireTls?: boolean; replace?: boolean } = {},
): Promise<void> {
  const passwordHash = await hashPassword(password);
  writeUserEntry(file, name, { password: passwordHash, requireTls: opts.requireTls ?? true }, { replace: opts.replace ?? false });
}

function parseHash(stored: string): ParsedHash {
  if (!PASSWORD_HASH.test(stored)) throw new Error('not a scrypt$N$r$p$salt$hash value');
  const [, n, r, p, salt, hash] = stored.split('$') as [string, string, string, string, string, string];
  const parsed = { N: Number(n), r: Number(r), p: Number(p), salt: Buffer.from(salt, 'base64'), hash: Buffer.from(hash, 'base64') };
  checkParams(parsed.N, parsed.r, parsed.p);
  if (parsed.salt.length < 8) throw new Error('salt shorter than 8 bytes');
  if (parsed.hash.length < 16) throw new Error('hash shorter than 16 bytes');
  return parsed;
}

function checkParams(N: number, r: number, p: number): void {
  if (!Number.isInteger(N) || N < 2 || N > MAX_N || (N & (N - 1)) !== 0) throw new Error(`scrypt N must be a power of two up to ${MAX_N}`);
  if (!Number.isInteger(r) || r < 1 || r > MAX_R) throw new Error(`scrypt r must be 1-${MAX_R}`);
  if (!Number.isInteger(p) || p < 1 || p > MAX_P) throw new Error(`scrypt p must be 1-${MAX_P}`);
  if (128 * N * r > MAX_MEMORY_BYTES) throw new Error(`scrypt N and r need more than ${MAX_MEMORY_BYTES / 1024 / 1024} MiB`);
}

function derive(password: string, salt: Buffer, keylen: number, params: { N: number; r: number; p: number }): Promise<Buffer> {
  // scrypt needs 128 * N * r bytes; Node refuses above maxmem (32 MiB by default).
  const options: ScryptOptions = { N: params.N, r: params.r, p: params.p, maxmem: 256 * params.N * params.r + 1024 * 1024 };
  return new Promise((resolve, reject) => {
    scrypt(password.normalize('NFC'), salt, keylen, options, (err, key) => (err ? reject(err) : resolve(key)));
  });
}
