// The relay's evidence signing key: an Ed25519 private key in a PKCS#8 PEM file
// that evidence.signing_key_file names, and the public key auditors verify with.
//
// Like the portal's master keys, the file must not be readable by group or others
// (as OpenSSH refuses such a private key): chmod 600. The key is made only by
// `sealrelay evidence keygen`, which never overwrites a file (evidence already
// handed out was signed by the key there). Nothing here prints or logs the private
// key; errors name the file, never its content.
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { readSecretFile } from '../config/secret-source.ts';
import { keyIdOf } from './evidence.ts';

export class EvidenceKeyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'EvidenceKeyError';
  }
}

/** Makes a key pair and writes the private key to `file` (new, mode 0600); returns the public key. */
export function generateEvidenceKey(file: string): KeyObject {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  try {
    // "wx": create only; EEXIST rather than replace the key earlier evidence was signed with.
    writeFileSync(file, pem, { mode: 0o600, flag: 'wx' });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new EvidenceKeyError(code === 'EEXIST' ? `${file} exists; not overwritten` : `cannot write ${file}: ${(err as Error).message}`);
  }
  return publicKey;
}

/** The private key in `file`, after checking its mode and that it is Ed25519. */
export function loadEvidenceSigningKey(file: string): KeyObject {
  const pem = readSecretFile(file, (reason) => new EvidenceKeyError(`evidence.signing_key_file ${reason}`));
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch {
    throw new EvidenceKeyError(`evidence.signing_key_file ${file}: not a PEM private key (sealrelay evidence keygen makes one)`);
  }
  if (key.asymmetricKeyType !== 'ed25519') throw new EvidenceKeyError(`evidence.signing_key_file ${file}: a ${key.asymmetricKeyType ?? 'unknown'} key; evidence is signed with Ed25519`);
  return key;
}

/** A published public key (SPKI PEM) from `file`. A private key is refused: auditors never need one. */
export function loadEvidencePublicKey(file: string): KeyObject {
  let pem: string;
  try {
    pem = readFileSync(file, 'utf8');
  } catch (err) {
    throw new EvidenceKeyError(`${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`);
  }
  if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(pem)) throw new EvidenceKeyError(`${file}: a private key; give the published public key (sealrelay evidence pubkey)`);
  let key: KeyObject;
  try {
    key = createPublicKey(pem);
  } catch {
    throw new EvidenceKeyError(`${file}: not a PEM public key`);
  }
  if (key.asymmetricKeyType !== 'ed25519') throw new EvidenceKeyError(`${file}: a ${key.asymmetricKeyType ?? 'unknown'} key, not Ed25519`);
  return key;
}

/** What to publish: the public key as SPKI PEM and its key id. */
export function publicKeyText(key: KeyObject): { pem: string; keyId: string } {
  const publicKey = key.type === 'private' ? createPublicKey(key) : key;
  return { pem: publicKey.export({ type: 'spki', format: 'pem' }) as string, keyId: keyIdOf(publicKey) };
}
