// PGP/MIME (RFC 3156 §4) for the `pgp` mode and the `pgp` step of a fallback chain:
// the queued RFC 5322 message becomes a multipart/encrypted message whose second
// part is the ASCII-armored OpenPGP encryption of the original MIME entity.
//
// What moves where. The encrypted entity is the original's Content-* header fields
// (Content-Type, Content-Transfer-Encoding, Content-Disposition, …, copied raw), a
// blank line, and the original body bytes unchanged; a message without Content-Type
// gets an explicit `text/plain; charset=us-ascii` (RFC 2045 §5.2). Every other header
// field stays outside, routing fields included, and MIME-Version: 1.0 appears once.
//
// Protected headers, as draft-autocrypt-lamps-protected-headers has them (what
// Thunderbird, Enigmail, K-9 and mutt read): with a subject placeholder, the outer
// Subject is replaced by it (none is added where there was none) and the encrypted
// entity also carries the user-facing fields (From, To, Cc, Reply-To, Subject,
// Date, Message-ID, …) as raw copies, folding and encoded-words untouched, with
// protected-headers="v1" on its Content-Type. RFC 9788, which grew from that draft,
// marks the same thing with an `hp` parameter and HP-Outer fields instead; we emit
// neither, nor a legacy-display part: readers that know no protected headers show
// the placeholder.
//
// GnuPG 2.2 (Debian 12) must decrypt what we send. openpgp 6 makes v4 keys by
// default, but picks SEIPDv2 (AEAD) packets whenever every recipient key advertises
// the SEIPDv2 feature (openpgp.js keys made with aeadProtect do), and gpg 2.2 reads
// only SEIPDv1. So we fix the session key ourselves, with no AEAD algorithm: the
// message is always PKESKv3 + SEIPDv1 (MDC), AES-256 when every key prefers it and
// AES-128 otherwise (the cipher every OpenPGP implementation has), uncompressed
// (nothing to gain on base64 attachments, nothing for a receiver to decompress).
// v6 keys (RFC 9580) are refused: GnuPG 2.2 cannot use them, and software that
// holds them reads SEIPDv2, which we do not write.
//
// Keys are checked before any output: a missing, unreadable, v6, revoked or expired
// key, or one without a usable encryption subkey, is a PgpKeyError.
//
// Cost (measured with bench/crypto.ts). Reading a key and verifying its
// self-signatures (an RSA or EdDSA verification each) cost about as much as
// encrypting 100 KB, so parsed recipient keys are kept in a small LRU keyed by a hash
// of their bytes. openpgp.js remembers on the parsed key that a signature checked
// out; dates, expiry and revocation are still judged against the clock on every use,
// so a cached key stops being used the moment it expires, and a changed key (a
// revocation added, say) has other bytes and is read afresh. The entity goes to
// openpgp.js as one buffer, not as a web stream: the stream pipeline cost several
// milliseconds per message and, since openpgp.js copies the data between packets
// either way, peaked no lower for a 5 MB message. The binary result is armored
// straight into the outgoing message (pgp-armor.ts).
import crypto from 'node:crypto';
import * as openpgp from 'openpgp';
import { headerEnd, headerFields, HeaderSyntaxError, IMPLICIT_CONTENT_TYPE, type HeaderField } from '../mime/header-block.ts';
import { withArmoredMessage } from './pgp-armor.ts';

export interface PgpMimeOptions {
  /** Armored (or binary) OpenPGP public keys of the recipient(s); at least one. */
  readonly recipientKeys: readonly (string | Uint8Array)[];
  /** Extra key every message is also encrypted to (archive/escrow), optional. */
  readonly archiveKey?: string | Uint8Array | null;
  /** Sign inside the encryption with the relay's own key (armored private key, optional passphrase). */
  readonly signingKey?: { readonly armoredKey: string; readonly passphrase?: string } | null;
  /** Replace the outer Subject with this text (protected headers); null keeps the subject. */
  readonly subjectPlaceholder?: string | null;
}

export type PgpKeyRole = 'recipient' | 'archive' | 'signing';

export type PgpKeyReason =
  | 'missing'
  | 'unreadable'
  | 'unsupported-version'
  | 'revoked'
  | 'expired'
  | 'no-encryption-key'
  | 'no-signing-key'
  | 'locked';

/** A key that cannot be used; nothing was encrypted. */
export class PgpKeyError extends Error {
  constructor(
    readonly reason: PgpKeyReason,
    readonly role: PgpKeyRole,
    /** Hex fingerprint of the offending key, null when it could not be read. */
    readonly fingerprint: string | null,
    message: string,
  ) {
    super(message);
    this.name = 'PgpKeyError';
  }
}

/**
 * One config for every openpgp call, built from the library defaults without
 * changing them. Key methods want a full Config, not a partial one.
 */
const PGP_CONFIG: openpgp.Config = {
  ...openpgp.config,
  aeadProtect: false,
  preferredSymmetricAlgorithm: openpgp.enums.symmetric.aes256,
  preferredCompressionAlgorithm: openpgp.enums.compression.uncompressed,
};

/** Fields copied into the encrypted entity under protected headers: the ones a reader sees. */
const PROTECTED_FIELDS = new Set(['from', 'sender', 'reply-to', 'to', 'cc', 'subject', 'date', 'message-id', 'in-reply-to', 'references']);


/** Parsed recipient and archive keys kept between messages; a miss costs a parse and a few signature checks. */
const KEY_CACHE_ENTRIES = 128;

/** RFC 2047 §2: an encoded-word is at most 75 characters; 45 bytes make 60 base64 characters. */
const ENCODED_WORD_MAX_BYTES = 45;

/** Takes a whole RFC 5322 message (CRLF lines, as queued) and returns the whole PGP/MIME message to send. */
export async function encryptPgpMime(message: Buffer, opts: PgpMimeOptions): Promise<Buffer> {
  const placeholder = opts.subjectPlaceholder ?? null;
  const placeholderField = placeholder === null ? null : `Subject: ${encodeSubject(placeholder)}\r\n`;
  const now = new Date();
  if (opts.recipientKeys.length === 0) throw new PgpKeyError('missing', 'recipient', null, 'PGP/MIME needs at least one recipient key');
  const encryptionKeys = await Promise.all(opts.recipientKeys.map((k, i) => readEncryptionKey(k, 'recipient', i, now)));
  if (opts.archiveKey != null) encryptionKeys.push(await readEncryptionKey(opts.archiveKey, 'archive', 0, now));
  const signingKey = opts.signingKey != null ? await readSigningKey(opts.signingKey.armoredKey, opts.signingKey.passphrase, now) : null;

  const { outer, inner, bodyStart } = splitMessage(message, placeholder !== null);
  const { data, algorithm } = await openpgp.generateSessionKey({ encryptionKeys, date: now, config: PGP_CONFIG });
  const encrypted = await openpgp.encrypt({
    message: await openpgp.createMessage({ binary: Buffer.concat([Buffer.from(inner, 'latin1'), message.subarray(bodyStart)]), format: 'binary', date: now }),
    encryptionKeys,
    signingKeys: signingKey ?? undefined,
    // No aeadAlgorithm: forces SEIPDv1 whatever the keys advertise (see the module comment).
    sessionKey: { data, algorithm },
    date: now,
    format: 'binary',
    config: PGP_CONFIG,
  });

  // '.' never occurs in armor (base64, '=', and the dash lines), so no line of the
  // armored part can be taken for this boundary.
  const boundary = `sealrelay.pgp.${crypto.randomBytes(16).toString('hex')}`;
  const outerHeaders = outer.map((f) => (f.name === 'subject' && placeholderField !== null ? placeholderField : f.raw)).join('');
  const head =
    outerHeaders +
    'MIME-Version: 1.0\r\n' +
    `Content-Type: multipart/encrypted; protocol="application/pgp-encrypted";\r\n boundary="${boundary}"\r\n` +
    '\r\n' +
    'This is an OpenPGP/MIME encrypted message (RFC 3156).\r\n' +
    `--${boundary}\r\n` +
    'Content-Type: application/pgp-encrypted\r\n' +
    'Content-Description: PGP/MIME version identification\r\n' +
    '\r\n' +
    'Version: 1\r\n' +
    '\r\n' +
    `--${boundary}\r\n` +
    'Content-Type: application/octet-stream; name="encrypted.asc"\r\n' +
    'Content-Description: OpenPGP encrypted message\r\n' +
    'Content-Disposition: inline; filename="encrypted.asc"\r\n' +
    '\r\n';
  return withArmoredMessage(head, encrypted, `\r\n--${boundary}--\r\n`);
}

/**
 * Splits the message into the outer header fields, the encrypted entity's header
 * block (ending with the blank line) and where the body starts.
 */
function splitMessage(message: Buffer, protect: boolean): { outer: HeaderField[]; inner: string; bodyStart: number } {
  const end = headerEnd(message);
  const bodyStart = message[end] === 0x0d && message[end + 1] === 0x0a ? end + 2 : message.length;
  // latin1 maps each byte to one character and back, so 8-bit header bytes survive.
  const fields = parseFields(message.subarray(0, end).toString('latin1'));
  const outer: HeaderField[] = [];
  const content: string[] = [];
  const copied: string[] = [];
  let subjectSeen = false;
  for (const field of fields) {
    if (field.name.startsWith('content-')) {
      content.push(field.name === 'content-type' && protect ? withProtectedParam(field.raw) : field.raw);
      continue;
    }
    if (protect && PROTECTED_FIELDS.has(field.name)) copied.push(field.raw);
    if (field.name === 'mime-version') continue;
    if (field.name === 'subject' && protect) {
      // One placeholder however many Subject fields the original had.
      if (subjectSeen) continue;
      subjectSeen = true;
    }
    outer.push(field);
  }
  if (!fields.some((f) => f.name === 'content-type')) content.unshift(protect ? withProtectedParam(IMPLICIT_CONTENT_TYPE) : IMPLICIT_CONTENT_TYPE);
  return { outer, inner: copied.join('') + content.join('') + '\r\n', bodyStart };
}

function parseFields(block: string): HeaderField[] {
  try {
    return headerFields(block);
  } catch (err) {
    if (err instanceof HeaderSyntaxError) throw new Error(`PGP/MIME: ${err.message}`);
    throw err;
  }
}

/** Appends protected-headers="v1" as a folded parameter line. */
function withProtectedParam(contentType: string): string {
  return contentType.replace(/[\s;]*$/, '') + ';\r\n protected-headers="v1"\r\n';
}

/** The placeholder as a header value: as is when printable ASCII, else UTF-8 encoded-words (RFC 2047). */
function encodeSubject(text: string): string {
  if (/[\r\n\0]/.test(text)) throw new Error('PGP/MIME: the subject placeholder must be a single line');
  if (/^[\x20-\x7e]*$/.test(text)) return text;
  const words: string[] = [];
  let chunk = '';
  for (const ch of text) {
    if (Buffer.byteLength(chunk + ch) > ENCODED_WORD_MAX_BYTES) {
      words.push(chunk);
      chunk = '';
    }
    chunk += ch;
  }
  words.push(chunk);
  return words.map((w) => `=?UTF-8?B?${Buffer.from(w, 'utf8').toString('base64')}?=`).join('\r\n ');
}

async function readEncryptionKey(source: string | Uint8Array, role: PgpKeyRole, index: number, now: Date): Promise<openpgp.PublicKey> {
  const label = role === 'recipient' ? `recipient key #${index + 1}` : 'archive key';
  const key = await cachedKey(source, role, label);
  const fingerprint = key.getFingerprint().toUpperCase();
  await checkValidity(key, role, label, now);
  try {
    await key.getEncryptionKey(undefined, now, undefined, PGP_CONFIG);
  } catch (e) {
    throw new PgpKeyError('no-encryption-key', role, fingerprint, `${label} ${fingerprint} has no usable encryption subkey (${errorText(e)})`);
  }
  return key;
}

const keyCache = new Map<string, openpgp.PublicKey>();

/** The parsed public key for `source`, from the cache when these exact bytes were read before; validity is the caller's to check. */
async function cachedKey(source: string | Uint8Array, role: PgpKeyRole, label: string): Promise<openpgp.PublicKey> {
  const id = crypto
    .createHash('sha256')
    .update(typeof source === 'string' ? 'armored\0' : 'binary\0') // read differently, so never one entry
    .update(source)
    .digest('base64');
  let key = keyCache.get(id);
  if (key) {
    keyCache.delete(id); // re-inserted below as the most recently used
  } else {
    const read = await readOneKey(source, role, label);
    key = read.isPrivate() ? read.toPublic() : read;
  }
  keyCache.set(id, key);
  if (keyCache.size > KEY_CACHE_ENTRIES) keyCache.delete(keyCache.keys().next().value!);
  return key;
}

/**
 * The relay's signing key, unlocked: read and decrypted once per key and passphrase
 * (the passphrase's key derivation is slow by design, and every sealed copy is signed),
 * its validity judged again at each use. Like the DKIM and S/MIME signing keys, it
 * stays usable in memory while the relay runs.
 */
const unlockedSigningKeys = new Map<string, Promise<openpgp.PrivateKey>>();

async function readSigningKey(armoredKey: string, passphrase: string | undefined, now: Date): Promise<openpgp.PrivateKey> {
  const id = crypto.createHash('sha256').update(armoredKey).update('\0').update(passphrase ?? '\0none').digest('base64');
  let unlocked = unlockedSigningKeys.get(id);
  if (!unlocked) {
    unlocked = unlockSigningKey(armoredKey, passphrase, now);
    unlockedSigningKeys.set(id, unlocked);
    // A key that cannot be unlocked is tried again next time (the file may be fixed by then).
    unlocked.catch(() => unlockedSigningKeys.delete(id));
    if (unlockedSigningKeys.size > KEY_CACHE_ENTRIES) unlockedSigningKeys.delete(unlockedSigningKeys.keys().next().value!);
  }
  const key = await unlocked;
  const fingerprint = key.getFingerprint().toUpperCase();
  await checkValidity(key, 'signing', 'signing key', now);
  try {
    await key.getSigningKey(undefined, now, undefined, PGP_CONFIG);
  } catch (e) {
    throw new PgpKeyError('no-signing-key', 'signing', fingerprint, `the signing key ${fingerprint} cannot sign (${errorText(e)})`);
  }
  return key;
}

async function unlockSigningKey(armoredKey: string, passphrase: string | undefined, now: Date): Promise<openpgp.PrivateKey> {
  const label = 'signing key';
  let key: openpgp.PrivateKey;
  try {
    key = await openpgp.readPrivateKey({ armoredKey, config: PGP_CONFIG });
  } catch (e) {
    throw new PgpKeyError('unreadable', 'signing', null, `the ${label} is not a readable OpenPGP private key (${errorText(e)})`);
  }
  const fingerprint = key.getFingerprint().toUpperCase();
  if (key.keyPacket.version !== 4) throw versionError(key.keyPacket.version, 'signing', label, fingerprint);
  // Judged before unlocking, so that an expired locked key is reported as expired.
  await checkValidity(key, 'signing', label, now);
  if (key.isDecrypted()) return key;
  if (passphrase === undefined) throw new PgpKeyError('locked', 'signing', fingerprint, `the ${label} ${fingerprint} is passphrase-protected and no passphrase was given`);
  try {
    return await openpgp.decryptKey({ privateKey: key, passphrase, config: PGP_CONFIG });
  } catch (e) {
    throw new PgpKeyError('locked', 'signing', fingerprint, `the ${label} ${fingerprint} could not be unlocked (${errorText(e)})`);
  }
}

async function readOneKey(source: string | Uint8Array, role: PgpKeyRole, label: string): Promise<openpgp.Key> {
  let keys: openpgp.Key[];
  try {
    keys =
      typeof source === 'string'
        ? await openpgp.readKeys({ armoredKeys: source, config: PGP_CONFIG })
        : await openpgp.readKeys({ binaryKeys: source, config: PGP_CONFIG });
  } catch (e) {
    throw new PgpKeyError('unreadable', role, null, `${label} is not a readable OpenPGP key (${errorText(e)})`);
  }
  // A keyring where one key was meant would silently widen who can read the message.
  if (keys.length !== 1) throw new PgpKeyError('unreadable', role, null, `${label} holds ${keys.length} keys; pass exactly one`);
  const key = keys[0]!;
  if (key.keyPacket.version !== 4) throw versionError(key.keyPacket.version, role, label, key.getFingerprint().toUpperCase());
  return key;
}

/** Revocation and expiry of the primary key, named as such rather than as "no usable subkey". */
async function checkValidity(key: openpgp.Key, role: PgpKeyRole, label: string, now: Date): Promise<void> {
  const fingerprint = key.getFingerprint().toUpperCase();
  if (await key.isRevoked(undefined, undefined, now, PGP_CONFIG)) {
    throw new PgpKeyError('revoked', role, fingerprint, `${label} ${fingerprint} is revoked`);
  }
  let expires: Date | number | null;
  try {
    expires = await key.getExpirationTime(undefined, PGP_CONFIG);
  } catch (e) {
    throw new PgpKeyError('unreadable', role, fingerprint, `${label} ${fingerprint} has no valid self-signature (${errorText(e)})`);
  }
  if (expires instanceof Date && expires.getTime() <= now.getTime()) {
    throw new PgpKeyError('expired', role, fingerprint, `${label} ${fingerprint} expired on ${expires.toISOString()}`);
  }
}

function versionError(version: number, role: PgpKeyRole, label: string, fingerprint: string): PgpKeyError {
  return new PgpKeyError('unsupported-version', role, fingerprint, `${label} ${fingerprint} is a v${version} key; only v4 keys are used (GnuPG 2.2 compatibility)`);
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
