// The users file (config/users.yaml): submission accounts for ingress AUTH.
//
//   users:
//     app1:
//       password: "scrypt$32768$8$1$<salt b64>$<hash b64>"
//       require_tls: true
//
// This module only reads and writes the YAML (DESIGN: nothing but config/ parses
// YAML); hashing and verification live in ingress/users.ts. A missing file is an
// empty directory (a fresh install relays only from relay_networks). Problems are
// reported with file, line and key like sealrelay.yaml. Writes are atomic (temp
// file + rename, mode 0600) and keep the comments already in the file.
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { dirname } from 'node:path';
import { Document, isMap, LineCounter, parseDocument } from 'yaml';
import { z } from 'zod';
import { ConfigError, positionOf, type ConfigProblem } from './load.ts';

/** Account names: safe in YAML keys, logs and Received headers. */
export const USER_NAME = /^[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}$/;
/** scrypt$N$r$p$salt$hash (salt and hash in base64); the numbers are checked by ingress/users.ts. */
export const PASSWORD_HASH = /^scrypt\$\d{1,8}\$\d{1,3}\$\d{1,3}\$[A-Za-z0-9+/]+={0,2}\$[A-Za-z0-9+/]+={0,2}$/;

const usersFileSchema = z
  .object({
    users: z
      .record(
        z.string().regex(USER_NAME, 'user names are 1-64 of A-Z a-z 0-9 . _ @ + - and start with a letter or digit'),
        z
          .object({
            password: z.string().regex(PASSWORD_HASH, 'expected a hash made by `sealrelay user add` (scrypt$N$r$p$salt$hash)'),
            /** Refuse MAIL FROM from this account unless the session is TLS-protected (default: refuse). */
            require_tls: z.boolean().default(true),
          })
          .strict(),
      )
      .nullable()
      .default({}),
  })
  .strict();

export interface UserEntry {
  /** The stored password hash, never a password. */
  readonly password: string;
  readonly requireTls: boolean;
}

/** Reads the users file; null when it does not exist. Throws ConfigError on anything malformed. */
export function readUsersFile(file: string): Map<string, UserEntry> | null {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new ConfigError([problem(file, null, '', `cannot read: ${(err as Error).message}`)]);
  }
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length) {
    throw new ConfigError(
      doc.errors.map((e) => problem(file, e.linePos?.[0] ?? lineCounter.linePos(e.pos[0]), '', e.message.split('\n')[0] ?? e.code)),
    );
  }
  const result = usersFileSchema.safeParse(doc.toJS() ?? {});
  if (!result.success) {
    throw new ConfigError(
      result.error.issues.map((issue) => {
        const path = issue.path.map(String);
        let message = issue.message;
        if (issue.code === 'unrecognized_keys') {
          path.push(issue.keys[0] ?? '');
          message = `unknown key${issue.keys.length > 1 ? `s ${issue.keys.join(', ')}` : ''}`;
        }
        return problem(file, positionOf(doc, path, lineCounter), path.join('.'), message);
      }),
    );
  }
  const users = new Map<string, UserEntry>();
  for (const [name, entry] of Object.entries(result.data.users ?? {})) {
    users.set(name, { password: entry.password, requireTls: entry.require_tls });
  }
  return users;
}

export class UserExistsError extends Error {
  constructor(file: string, name: string) {
    super(`${file}: user "${name}" already exists (use --replace to change the password)`);
    this.name = 'UserExistsError';
  }
}

/**
 * Adds (or, with `replace`, overwrites) one account, keeping everything else in
 * the file as it was. The file is rewritten atomically with mode 0600.
 */
export function writeUserEntry(file: string, name: string, entry: UserEntry, opts: { replace?: boolean } = {}): void {
  if (!USER_NAME.test(name)) throw new Error(`not a valid user name: ${JSON.stringify(name)}`);
  if (!PASSWORD_HASH.test(entry.password)) throw new Error('refusing to write a password that is not a scrypt hash');
  readUsersFile(file); // a malformed file is reported, never overwritten
  let doc: Document;
  try {
    doc = parseDocument(readFileSync(file, 'utf8'));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    doc = new Document({ users: {} });
    doc.commentBefore = ' SealRelay submission accounts. Manage with `sealrelay user add`; keep this file mode 0600.';
  }
  if (!isMap(doc.contents)) doc.contents = doc.createNode({}) as typeof doc.contents;
  if (!isMap(doc.get('users'))) doc.set('users', doc.createNode({}));
  if (doc.hasIn(['users', name]) && !opts.replace) throw new UserExistsError(file, name);
  doc.setIn(['users', name], doc.createNode({ password: entry.password, require_tls: entry.requireTls }));
  writeAtomically(file, doc.toString());
}

function writeAtomically(file: string, text: string): void {
  mkdirSync(dirname(file), { recursive: true });
  const temp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  const fd = openSync(temp, 'wx', 0o600);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    unlinkSync(temp);
    throw err;
  }
  closeSync(fd);
  renameSync(temp, file);
}

function problem(file: string, pos: { line: number; col: number } | null, key: string, message: string): ConfigProblem {
  return { file, line: pos?.line ?? null, column: pos?.col ?? null, key, message };
}


/** Removes one account; false when it was not there. Atomic like writeUserEntry. */
export function removeUserEntry(file: string, name: string): boolean {
  if (readUsersFile(file) === null) return false;
  const doc = parseDocument(readFileSync(file, 'utf8'));
  if (!doc.hasIn(['users', name])) return false;
  doc.deleteIn(['users', name]);
  writeAtomically(file, doc.toString());
  return true;
}
