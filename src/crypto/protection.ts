// What the delivery worker needs from crypto/, set up once from the config:
// encrypt one recipient's copy (PGP/MIME or S/MIME, with the recipient's key from
// the key store or WKD) and DKIM-sign what goes on the wire. Every key file named
// in the config is read and checked here, at start or reload, so a bad file is an
// error naming its setting, never a surprise at send time.
import { createPrivateKey } from 'node:crypto';
import fs from 'node:fs';
import * as openpgp from 'openpgp';
import type { Config } from '../config/schema.ts';
import type { KeyKind, RecipientKey, Store } from '../store/store.ts';
import { loadDkimKey, signDkim, type DkimKey } from './dkim.ts';
import { ByteBudget } from './byte-budget.ts';
import { encryptPgpMime } from './pgp-mime.ts';
import { createKeyFinder, type KeyFinder } from './recipient-keys.ts';
import { encryptSmime, signSmime } from './smime.ts';

export type Encrypted =
  | { readonly ok: true; readonly message: Buffer; readonly keyFingerprint: string; readonly keySource: 'import' | 'wkd'; readonly signed: boolean }
  | { readonly ok: false; readonly why: string; readonly temporary: boolean };

export interface Protection {
  /** `message` encrypted for `recipient` by `method`, or why that cannot be done. */
  encrypt(method: KeyKind, recipient: string, message: Buffer): Promise<Encrypted>;
  /**
   * `message` encrypted for `recipient` and handed to `use`, which delivers it. From the
   * start of the encryption until `use` is done the copy counts against
   * crypto.encryption_budget_bytes (byte-budget.ts), so a large message to many
   * recipients is never encrypted — and held — many times at once. The key is found
   * first, outside the budget; without one, `use` gets why.
   */
  seal<T>(method: KeyKind, recipient: string, message: Buffer, use: (copy: Encrypted) => Promise<T>): Promise<T>;
  /** `message` with a DKIM signature for its From domain when a key is configured for it. */
  sign(message: Buffer): Promise<Buffer>;
}

export class ProtectionConfigError extends Error {
  constructor(
    readonly setting: string,
    readonly file: string,
    reason: string,
  ) {
    super(`${setting}: ${file}: ${reason}`);
    this.name = 'ProtectionConfigError';
  }
}

function readSetting(setting: string, file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new ProtectionConfigError(setting, file, (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message);
  }
}

/** A tiny message put through each configured key once at load, so a bad key fails now, with its setting. */
const PROBE = Buffer.from('Subject: key check\r\nContent-Type: text/plain\r\n\r\nkey check\r\n');

/** A throwaway recipient for checking the signing key (which may be sign-only). */
async function probeRecipient(): Promise<string> {
  return (await openpgp.generateKey({ userIDs: [{ email: 'key-check@sealrelay.invalid' }], type: 'ecc', curve: 'curve25519Legacy', format: 'armored' })).publicKey;
}

/**
 * The S/MIME signing key read on its own, before the probe: the probe cannot tell a
 * bad key from a bad certificate, and the operator needs to know which file to fix.
 */
function checkSmimeSigningKey(pem: string): void {
  let type: string | undefined;
  try {
    type = createPrivateKey(pem).asymmetricKeyType;
  } catch (err) {
    throw new Error(`not an unencrypted private key in PEM (${(err as Error).message})`);
  }
  if (type !== 'rsa') throw new Error(`${type ?? 'unknown'} key; S/MIME signing (node-forge) needs an RSA key`);
}

async function tryKey(setting: string, file: string, use: () => unknown): Promise<void> {
  try {
    await use();
  } catch (err) {
    throw new ProtectionConfigError(setting, file, (err as Error).message);
  }
}

/** Every key, certificate and CA file the crypto settings name, read and tried. */
export interface ProtectionKeys {
  readonly pgpArchive: string | null;
  readonly pgpSigner: { armoredKey: string; passphrase?: string } | null;
  readonly smimeArchive: string | null;
  readonly smimeSigner: { certPem: string; keyPem: string } | null;
  readonly dkimKeys: DkimKey[];
  readonly wkdCa: string | null;
}

/**
 * Reads every file named under crypto and dkim and puts each key through a probe
 * message; throws a ProtectionConfigError naming the first bad setting. Used at
 * start and reload, and by `sealrelay config check`, which must try what start tries.
 */
export async function loadProtectionKeys(config: Pick<Config, 'crypto' | 'dkim'>): Promise<ProtectionKeys> {
  const { pgp, smime, wkd } = config.crypto;
  const pgpArchive = pgp.archive_key_file ? readSetting('crypto.pgp.archive_key_file', pgp.archive_key_file) : null;
  const pgpSigner = pgp.signing_key_file
    ? {
        armoredKey: readSetting('crypto.pgp.signing_key_file', pgp.signing_key_file),
        ...(pgp.signing_passphrase_file ? { passphrase: readSetting('crypto.pgp.signing_passphrase_file', pgp.signing_passphrase_file).replace(/\r?\n$/, '') } : {}),
      }
    : null;
  const smimeArchive = smime.archive_cert_file ? readSetting('crypto.smime.archive_cert_file', smime.archive_cert_file) : null;
  const smimeSigner =
    smime.signing_cert_file && smime.signing_key_file
      ? { certPem: readSetting('crypto.smime.signing_cert_file', smime.signing_cert_file), keyPem: readSetting('crypto.smime.signing_key_file', smime.signing_key_file) }
      : null;
  const dkimKeys: DkimKey[] = Object.entries(config.dkim.domains).map(([domain, d]) => {
    const setting = `dkim.domains.${domain}.key_file`;
    try {
      return loadDkimKey(domain.toLowerCase(), d.selector, readSetting(setting, d.key_file));
    } catch (err) {
      if (err instanceof ProtectionConfigError) throw err;
      throw new ProtectionConfigError(setting, d.key_file, (err as Error).message);
    }
  });

  if (pgpArchive) await tryKey('crypto.pgp.archive_key_file', pgp.archive_key_file!, () => encryptPgpMime(PROBE, { recipientKeys: [pgpArchive] }));
  if (pgpSigner) await tryKey('crypto.pgp.signing_key_file', pgp.signing_key_file!, async () => encryptPgpMime(PROBE, { recipientKeys: [await probeRecipient()], signingKey: pgpSigner }));
  if (smimeArchive) await tryKey('crypto.smime.archive_cert_file', smime.archive_cert_file!, () => encryptSmime(PROBE, [smimeArchive]));
  if (smimeSigner) await tryKey('crypto.smime.signing_key_file', smime.signing_key_file!, () => checkSmimeSigningKey(smimeSigner.keyPem));
  if (smimeSigner) await tryKey('crypto.smime.signing_cert_file', smime.signing_cert_file!, () => signSmime(PROBE, smimeSigner));
  const wkdCa = wkd.enabled && wkd.ca_file ? readSetting('crypto.wkd.ca_file', wkd.ca_file) : null;
  return { pgpArchive, pgpSigner, smimeArchive, smimeSigner, dkimKeys, wkdCa };
}

/** `budget`: tests pass their own to watch it; by default one of `crypto.encryption_budget_bytes`. */
export async function loadProtection(config: Config, store: Store, opts: { budget?: ByteBudget } = {}): Promise<Protection> {
  const { pgp, wkd } = config.crypto;
  const { pgpArchive, pgpSigner, smimeArchive, smimeSigner, dkimKeys, wkdCa } = await loadProtectionKeys(config);
  const keys: KeyFinder = createKeyFinder({
    store,
    wkd: wkd.enabled
      ? {
          dnsServers: config.delivery.dns.servers,
          timeoutMs: wkd.timeout_ms,
          port: wkd.https_port,
          ...(wkdCa ? { ca: wkdCa } : {}),
          cacheMs: wkd.cache_seconds * 1000,
          negativeCacheMs: wkd.negative_cache_seconds * 1000,
        }
      : null,
  });

  // The relay's S/MIME signature is the same for every recipient of a message: made once per message.
  const signedOnce = new WeakMap<Buffer, Buffer>();
  const smimeSigned = (message: Buffer, signer: { certPem: string; keyPem: string }): Buffer => {
    let signed = signedOnce.get(message);
    if (!signed) signedOnce.set(message, (signed = signSmime(message, signer)));
    return signed;
  };

  const encryptTo = async (method: KeyKind, key: RecipientKey, message: Buffer): Promise<Encrypted> => {
    const facts = { keyFingerprint: key.fingerprint, keySource: key.source };
    try {
      if (method === 'pgp') {
        const out = await encryptPgpMime(message, { recipientKeys: [key.data], archiveKey: pgpArchive, signingKey: pgpSigner, subjectPlaceholder: pgp.subject_placeholder });
        return { ok: true, message: out, signed: pgpSigner !== null, ...facts };
      }
      const inner = smimeSigner ? smimeSigned(message, smimeSigner) : message;
      const out = encryptSmime(inner, smimeArchive ? [key.data, smimeArchive] : [key.data]);
      return { ok: true, message: out, signed: smimeSigner !== null, ...facts };
    } catch (err) {
      // The key was judged usable, yet encryption refused it: not something a retry fixes.
      return { ok: false, why: `${method} encryption to ${key.fingerprint} failed: ${(err as Error).message}`, temporary: false };
    }
  };

  // Shared by every job of the delivery thread: what bounds the memory of sealed copies.
  const budget = opts.budget ?? new ByteBudget(config.crypto.encryption_budget_bytes);
  const seal = async <T>(method: KeyKind, recipient: string, message: Buffer, use: (copy: Encrypted) => Promise<T>): Promise<T> => {
    const found = await keys.find(recipient, method);
    if (!found.ok) return use(found);
    return budget.run(message.length, async () => use(await encryptTo(method, found.key, message)));
  };

  return {
    seal,
    encrypt: (method, recipient, message) => seal(method, recipient, message, async (copy) => copy),
    async sign(message) {
      if (!dkimKeys.length) return message;
      return (await signDkim(message, dkimKeys)).message;
    },
  };
}
