/**
 * gpg: a throwaway GnuPG home for tests that need an independent OpenPGP party.
 *
 * The relay encrypts and signs with openpgp.js; a test proves the result is usable
 * by handing it to the system's gpg (2.2 on Debian 12), the program recipients
 * actually run. Each home is a temporary GNUPGHOME with its own gpg-agent, driven in
 * batch mode with an empty passphrase; close() kills that agent and removes the dir.
 *
 * Keys of the kinds a recipient may publish can be made here: RSA 3072 or
 * ed25519 + cv25519, with or without expiry, already expired (generated under a
 * faked clock a day before it ran out), revoked (gpg's own revocation certificate,
 * imported), or sign-only (no encryption subkey).
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export type GpgAlgo = 'rsa3072' | 'ed25519';

export interface GenerateKeyOptions {
  /** Default ed25519 (primary) with a cv25519 encryption subkey. */
  readonly algo?: GpgAlgo;
  /** Default "Test <test-N@example.test>". */
  readonly uid?: string;
  /** gpg expiry for the primary key and subkey ("never", "1y", "30d"). Default "never". */
  readonly expire?: string;
  /** Generated at a faked time in 2020 with a one-day lifetime, so it is expired now. */
  readonly expired?: boolean;
  /** Revoked right after generation with gpg's own revocation certificate. */
  readonly revoked?: boolean;
  /** Primary key only, certify+sign, no encryption subkey. */
  readonly signOnly?: boolean;
}

export interface GpgKey {
  readonly fingerprint: string;
  readonly uid: string;
  /** Armored public key (for revoked keys: including the revocation signature). */
  readonly publicArmored: string;
}

export interface GpgResult {
  /** Exit code of gpg. */
  readonly code: number;
  readonly output: Buffer;
  /** "[GNUPG:] " status lines, prefix removed. */
  readonly status: readonly string[];
  /** Human-readable diagnostics (status lines removed). */
  readonly log: string;
}

export interface GpgHome {
  readonly dir: string;
  generateKey(opts?: GenerateKeyOptions): Promise<GpgKey>;
  exportPublic(fingerprint: string): Promise<string>;
  exportSecret(fingerprint: string): Promise<string>;
  /** Imports armored or binary keys (public or secret) and trusts nothing extra. */
  importKey(key: string | Uint8Array): Promise<void>;
  /** `gpg --decrypt`; throws with gpg's log when gpg fails. */
  decrypt(ciphertext: string | Uint8Array): Promise<GpgResult>;
  /** `gpg --verify` of an inline-signed message or a detached signature over `data`. */
  verify(signature: string | Uint8Array, data?: Uint8Array): Promise<GpgResult>;
  /** Runs gpg with the home's batch options; never throws on a non-zero exit. */
  run(args: readonly string[], input?: string | Uint8Array): Promise<GpgResult>;
  close(): Promise<void>;
}

/** A day before 2020-01-02, with a one-day lifetime: long expired on any real clock. */
const EXPIRED_AT = '20200101T000000';
const STATUS_PREFIX = '[GNUPG:] ';

let keyCounter = 0;

export function createGpgHome(): GpgHome {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sealrelay-gpg-'));
  fs.chmodSync(dir, 0o700);
  let closed = false;

  const run = async (args: readonly string[], input?: string | Uint8Array): Promise<GpgResult> => {
    const full = ['--homedir', dir, '--batch', '--yes', '--no-tty', '--pinentry-mode', 'loopback', '--passphrase', '', '--status-fd', '2', ...args];
    const { code, stdout, stderr } = await spawnCollect('gpg', full, { GNUPGHOME: dir }, input);
    const lines = stderr.toString('utf8').split('\n');
    return {
      code,
      output: stdout,
      status: lines.filter((l) => l.startsWith(STATUS_PREFIX)).map((l) => l.slice(STATUS_PREFIX.length)),
      log: lines.filter((l) => !l.startsWith(STATUS_PREFIX)).join('\n'),
    };
  };

  const mustRun = async (args: readonly string[], input?: string | Uint8Array): Promise<GpgResult> => {
    const result = await run(args, input);
    if (result.code !== 0) throw new Error(`gpg ${args.join(' ')} exited ${result.code}:\n${result.log}`);
    return result;
  };

  const exportPublic = async (fingerprint: string): Promise<string> =>
    (await mustRun(['--armor', '--export', fingerprint])).output.toString('utf8');

  const generateKey = async (opts: GenerateKeyOptions = {}): Promise<GpgKey> => {
    const algo = opts.algo ?? 'ed25519';
    const uid = opts.uid ?? `Test <test-${process.pid}-${++keyCounter}@example.test>`;
    const expire = opts.expired ? '1d' : (opts.expire ?? 'never');
    // Frozen ("!"): a running faked clock restarts at EXPIRED_AT in each call, so on a busy
    // machine the subkey could predate its primary ("Time conflict").
    const clock = opts.expired ? ['--faked-system-time', `${EXPIRED_AT}!`] : [];
    const created = await mustRun([...clock, '--quick-gen-key', uid, algo, 'cert,sign', expire]);
    const fingerprint = keyCreatedFingerprint(created.status);
    if (!opts.signOnly) {
      const subAlgo = algo === 'ed25519' ? 'cv25519' : algo;
      await mustRun([...clock, '--quick-add-key', fingerprint, subAlgo, 'encr', expire]);
    }
    if (opts.revoked) {
      // gpg stores a revocation certificate at generation time, its first armor line
      // disarmed with ":" so it cannot be imported by accident; we mean to.
      const revFile = path.join(dir, 'openpgp-revocs.d', `${fingerprint}.rev`);
      const cert = fs.readFileSync(revFile, 'utf8').replace(/^:-----BEGIN/m, '-----BEGIN');
      await mustRun(['--import'], cert);
    }
    return { fingerprint, uid, publicArmored: await exportPublic(fingerprint) };
  };

  return {
    dir,
    run,
    generateKey,
    exportPublic,
    exportSecret: async (fingerprint) => (await mustRun(['--armor', '--export-secret-keys', fingerprint])).output.toString('utf8'),
    importKey: async (key) => {
      await mustRun(['--import'], key);
    },
    decrypt: (ciphertext) => mustRun(['--decrypt'], ciphertext),
    verify: async (signature, data) => {
      if (data === undefined) return run(['--verify'], signature);
      // A detached signature and its data need two inputs: the signature goes through a file.
      const sigFile = path.join(dir, `verify-${Date.now()}-${Math.random().toString(36).slice(2)}.sig`);
      fs.writeFileSync(sigFile, signature);
      try {
        return await run(['--verify', sigFile, '-'], data);
      } finally {
        fs.rmSync(sigFile, { force: true });
      }
    },
    close: async () => {
      if (closed) return;
      closed = true;
      await spawnCollect('gpgconf', ['--kill', 'gpg-agent'], { GNUPGHOME: dir });
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

function keyCreatedFingerprint(status: readonly string[]): string {
  // "KEY_CREATED P <fingerprint>" (doc/DETAILS in GnuPG)
  for (const line of status) {
    const m = /^KEY_CREATED [BP] ([0-9A-F]{40,64})/.exec(line);
    if (m) return m[1]!;
  }
  throw new Error(`gpg reported no KEY_CREATED status:\n${status.join('\n')}`);
}

interface Collected {
  code: number;
  stdout: Buffer;
  stderr: Buffer;
}

function spawnCollect(cmd: string, args: readonly string[], env: Record<string, string>, input?: string | Uint8Array): Promise<Collected> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    child.on('error', reject);
    // gpg may exit before reading all input (e.g. on a bad packet); that is its answer, not ours.
    child.stdin.on('error', () => undefined);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout: Buffer.concat(out), stderr: Buffer.concat(err) }));
    child.stdin.end(input ?? '');
  });
}
