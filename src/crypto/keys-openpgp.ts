// OpenPGP keys for the key store: reads public keys (and revocation certificates)
// with openpgp, merges them into the version already stored, and describes each as
// a RecipientKey. Only public material ever leaves this module: a secret key is
// cut down to its public part here, and the caller is told.
//
// Merging matters for revocation: a revocation (a bare certificate, or a key that
// carries one) must reach the stored key, and a later copy without it (an old
// export, a WKD answer) must not undo it. key.update() keeps every valid signature
// of both copies, so the union — revocations included — is what gets stored.
import * as openpgp from 'openpgp';
import { normaliseAddress, type RecipientKey } from '../store/store.ts';

export interface OpenPgpRead {
  readonly keys: openpgp.PublicKey[];
  /** Standalone key revocation signatures (gpg --gen-revoke output), as armored text. */
  readonly revocations: { readonly issuer: string | null; readonly armored: string }[];
  readonly notes: string[];
}

/** Public-key algorithms that can encrypt (RFC 9580 §9.1); the rest only sign. */
const ENCRYPTING_ALGORITHMS: ReadonlySet<string> = new Set(['rsaEncryptSign', 'rsaEncrypt', 'elgamal', 'ecdh', 'x25519', 'x448']);

/** Reads one binary OpenPGP packet stream: keys, or else a revocation certificate. Throws when it is neither. */
export async function readOpenPgp(binary: Uint8Array): Promise<OpenPgpRead> {
  let keys: openpgp.Key[];
  try {
    keys = await openpgp.readKeys({ binaryKeys: binary });
  } catch (keyError) {
    return readRevocations(binary, keyError as Error);
  }
  const notes: string[] = [];
  const publicKeys = keys.map((key) => {
    if (!key.isPrivate()) return key;
    notes.push(`key ${key.getFingerprint().toUpperCase()}: a secret key was given; only its public part is kept`);
    return key.toPublic();
  });
  return { keys: publicKeys, revocations: [], notes };
}

async function readRevocations(binary: Uint8Array, keyError: Error): Promise<OpenPgpRead> {
  let signature: openpgp.Signature;
  try {
    signature = await openpgp.readSignature({ binarySignature: binary });
  } catch {
    throw keyError;
  }
  const revocations = signature.packets.filter((p) => p.signatureType === openpgp.enums.signature.keyRevocation);
  if (!revocations.length) throw new Error('an OpenPGP signature, not a key or a key revocation');
  return {
    keys: [],
    revocations: revocations.map((p) => {
      const list = new openpgp.PacketList<openpgp.AnyPacket>();
      list.push(p);
      return {
        issuer: p.issuerFingerprint ? Buffer.from(p.issuerFingerprint).toString('hex').toUpperCase() : null,
        armored: openpgp.armor(openpgp.enums.armor.publicKey, list.write()),
      };
    }),
    notes: [],
  };
}

/** Reads the stored (armored, public) form back. */
export async function storedOpenPgpKey(key: RecipientKey): Promise<openpgp.PublicKey> {
  const parsed = await openpgp.readKey({ armoredKey: key.data });
  if (parsed.isPrivate()) throw new Error(`stored key ${key.fingerprint} holds secret material`);
  return parsed;
}

/** `base` with everything valid that `update` adds (users, subkeys, revocations). */
export async function mergeOpenPgp(base: openpgp.PublicKey, update: openpgp.PublicKey, now: number): Promise<openpgp.PublicKey> {
  return base.update(update, new Date(now));
}

/** Applies a revocation certificate; throws when it does not verify against the key. */
export async function revokeOpenPgp(key: openpgp.PublicKey, armoredRevocation: string): Promise<openpgp.PublicKey> {
  const { publicKey } = await openpgp.revokeKey({ key, revocationCertificate: armoredRevocation, format: 'object' });
  return publicKey;
}

/** Describes a public key as the store holds it. */
export async function describeOpenPgp(
  key: openpgp.PublicKey,
  origin: { source: RecipientKey['source']; importedAt: number },
  now: number,
): Promise<RecipientKey> {
  if (key.isPrivate()) throw new Error('refusing to describe a secret key for the key store');
  const date = new Date(now);
  const revoked = await key.isRevoked(undefined, undefined, date);
  return {
    fingerprint: key.getFingerprint().toUpperCase(),
    kind: 'pgp',
    addresses: await validAddresses(key, date),
    data: key.armor(),
    label: await primaryUserId(key, date),
    createdAt: key.getCreationTime().getTime(),
    expiresAt: await encryptionExpiry(key),
    revoked,
    // A revoked key is out whatever it could do; "revoked" is the one reason given.
    unusable: revoked ? null : await whyUnusable(key),
    source: origin.source,
    importedAt: origin.importedAt,
  };
}

/** Addresses of the user IDs whose self-signature holds now (a revoked user ID no longer counts). */
async function validAddresses(key: openpgp.PublicKey, date: Date): Promise<string[]> {
  const addresses = new Set<string>();
  for (const user of key.users) {
    if (!user.userID?.email) continue;
    const valid = await user.verify(date).then(
      () => true,
      () => false,
    );
    const address = valid ? normaliseAddress(user.userID.email) : null;
    if (address) addresses.add(address);
  }
  return [...addresses];
}

async function primaryUserId(key: openpgp.PublicKey, date: Date): Promise<string> {
  const primary = await key.getPrimaryUser(date).catch(() => null);
  return primary?.user.userID?.userID ?? key.getUserIDs()[0] ?? '';
}

/**
 * Whether the key can encrypt at all, ignoring time (expiry is judged apart, against
 * the clock of the day): `date` null makes openpgp skip its time checks.
 */
async function whyUnusable(key: openpgp.PublicKey): Promise<string | null> {
  try {
    await key.getEncryptionKey(undefined, null);
    return null;
  } catch (err) {
    const algorithms = key.getKeys().map((k) => k.getAlgorithmInfo().algorithm);
    if (!algorithms.some((a) => ENCRYPTING_ALGORITHMS.has(a))) return 'no encryption subkey (sign-only key)';
    // openpgp names the last candidate's failure (weak RSA, revoked subkey, ...) after its own preamble.
    const cause = (err as Error).message.replace(/^Could not find valid encryption key packet in key [0-9a-f]+:?\s*/i, '');
    return cause ? `no valid encryption subkey: ${cause}` : 'no encryption subkey';
  }
}

/**
 * When encrypting to the key stops working: the primary key's expiry, or earlier when
 * every encryption subkey expires before it. Null: never.
 */
async function encryptionExpiry(key: openpgp.PublicKey): Promise<number | null> {
  const primary = toMs(await key.getExpirationTime());
  let latestSubkey: number | null | undefined;
  for (const subkey of key.subkeys) {
    const chosen = await key.getEncryptionKey(subkey.getKeyID(), null).catch(() => null);
    if (chosen !== subkey) continue;
    // null: no time checks, as above (openpgp's types leave it out).
    const expiry = toMs(await subkey.getExpirationTime(null as unknown as Date));
    latestSubkey = latestSubkey === undefined ? expiry : latestSubkey === null || expiry === null ? null : Math.max(latestSubkey, expiry);
  }
  if (latestSubkey === undefined || latestSubkey === null) return primary;
  return primary === null ? latestSubkey : Math.min(primary, latestSubkey);
}

function toMs(at: Date | number | null): number | null {
  return at instanceof Date ? at.getTime() : null;
}
