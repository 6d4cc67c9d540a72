// Key files in, RecipientKeys out: the one door through which OpenPGP keys and S/MIME
// certificates enter the key store, whether an operator imports them or WKD finds
// them. A file may hold armored or binary OpenPGP (several keys, or a revocation
// certificate) or X.509 certificates (PEM, several per file, or one DER). What
// cannot be read is reported as a problem naming the part; the rest is still read.
//
// Copies of a key already stored (`known`) are merged into the stored one rather
// than replacing it, so a revocation, once stored, stays (keys-openpgp.ts).
import * as openpgp from 'openpgp';
import type { RecipientKey } from '../store/store.ts';
import { describeOpenPgp, mergeOpenPgp, readOpenPgp, revokeOpenPgp, storedOpenPgpKey } from './keys-openpgp.ts';
import { describeCertificate } from './keys-x509.ts';

export interface ParsedKeys {
  readonly keys: RecipientKey[];
  /** Parts that could not be read, or revocations that could not be applied. */
  readonly problems: string[];
  /** Worth telling the operator, yet nothing failed (a secret key cut down to its public part). */
  readonly notes: string[];
}

export interface ParseOptions {
  readonly source: RecipientKey['source'];
  /** ms since the epoch: validity of signatures is judged at this time. */
  readonly now: number;
  /** The stored key with this fingerprint: what the file brings is merged into it, and it keeps its source and importedAt. */
  readonly known?: (fingerprint: string) => Promise<RecipientKey | null>;
}

type Part =
  | { readonly kind: 'openpgp'; readonly name: string; readonly binary: Uint8Array }
  | { readonly kind: 'openpgp-armored'; readonly name: string; readonly text: string }
  | { readonly kind: 'der'; readonly name: string; readonly der: Buffer }
  | { readonly kind: 'skip'; readonly name: string; readonly problem: string | null; readonly note: string | null };

const UTF8_BOM = [0xef, 0xbb, 0xbf];
/** An armored or PEM block; BEGIN at the start of a line, so gpg's defused ":-----BEGIN" revocation stays defused. */
const ARMOR_BLOCK = /^-----BEGIN ([A-Z0-9 ]+)-----\r?$[\s\S]*?^-----END \1-----\r?$/gm;

/** Reads every OpenPGP key (armored or binary, several per file) or X.509 certificate (PEM — several per file — or DER) in `bytes`. */
export async function parseKeyFile(bytes: Uint8Array, opts: ParseOptions): Promise<ParsedKeys> {
  const problems: string[] = [];
  const notes: string[] = [];
  const origin = { source: opts.source, importedAt: opts.now };
  const pgpKeys: openpgp.PublicKey[] = [];
  const revocations: { issuer: string | null; armored: string; name: string }[] = [];
  const certificates = new Map<string, RecipientKey>();

  for (const part of splitParts(bytes)) {
    try {
      if (part.kind === 'skip') {
        if (part.problem) problems.push(named(part.name, part.problem));
        if (part.note) notes.push(named(part.name, part.note));
      } else if (part.kind === 'der') {
        const cert = describeCertificate(part.der, origin);
        certificates.set(cert.fingerprint, cert);
      } else {
        const read = await readOpenPgp(part.kind === 'openpgp' ? part.binary : await unarmor(part.text));
        pgpKeys.push(...read.keys);
        revocations.push(...read.revocations.map((r) => ({ ...r, name: part.name })));
        notes.push(...read.notes);
      }
    } catch (err) {
      problems.push(named(part.name, (err as Error).message));
    }
  }

  const keys: RecipientKey[] = [];
  const pgp = await mergePgp(pgpKeys, revocations, opts, problems);
  for (const { key, stored } of pgp.values()) {
    try {
      keys.push(await describeOpenPgp(key, stored ? { source: stored.source, importedAt: stored.importedAt } : origin, opts.now));
    } catch (err) {
      problems.push(`key ${key.getFingerprint().toUpperCase()}: ${(err as Error).message}`);
    }
  }
  for (const cert of certificates.values()) {
    // A certificate never changes under its fingerprint: only its origin is kept.
    const stored = await opts.known?.(cert.fingerprint);
    keys.push(stored ? { ...cert, source: stored.source, importedAt: stored.importedAt } : cert);
  }
  return { keys, problems, notes };
}

/** One entry per fingerprint: every copy in the file, the stored version, and the revocations, merged. */
async function mergePgp(
  read: readonly openpgp.PublicKey[],
  revocations: readonly { issuer: string | null; armored: string; name: string }[],
  opts: ParseOptions,
  problems: string[],
): Promise<Map<string, { key: openpgp.PublicKey; stored: RecipientKey | null }>> {
  const merged = new Map<string, { key: openpgp.PublicKey; stored: RecipientKey | null }>();
  const withStored = async (fingerprint: string, key: openpgp.PublicKey | null) => {
    const stored = await opts.known?.(fingerprint);
    if (stored?.kind !== 'pgp') return key && { key, stored: null };
    const base = await storedOpenPgpKey(stored);
    return { key: key ? await mergeOpenPgp(base, key, opts.now) : base, stored };
  };
  for (const key of read) {
    const fingerprint = key.getFingerprint().toUpperCase();
    const seen = merged.get(fingerprint);
    if (seen) seen.key = await mergeOpenPgp(seen.key, key, opts.now);
    else merged.set(fingerprint, { key, stored: null });
  }
  for (const [fingerprint, entry] of merged) {
    try {
      merged.set(fingerprint, (await withStored(fingerprint, entry.key))!);
    } catch (err) {
      problems.push(`key ${fingerprint}: cannot merge with the stored copy: ${(err as Error).message}`);
      merged.delete(fingerprint);
    }
  }
  for (const revocation of revocations) {
    const { issuer, name } = revocation;
    if (!issuer) {
      problems.push(`${name}: the revocation certificate does not name its key's fingerprint; import the revoked key instead`);
      continue;
    }
    try {
      const entry = merged.get(issuer) ?? (await withStored(issuer, null));
      if (!entry) {
        problems.push(`${name}: revocation certificate for key ${issuer}, which is neither stored nor in this file`);
        continue;
      }
      entry.key = await revokeOpenPgp(entry.key, revocation.armored);
      merged.set(issuer, entry);
    } catch (err) {
      problems.push(`${name}: revocation certificate for key ${issuer} not applied: ${(err as Error).message}`);
    }
  }
  return merged;
}

/** Splits a file into the parts it is made of, by its first bytes. */
function splitParts(input: Uint8Array): Part[] {
  const bytes = UTF8_BOM.every((b, i) => input[i] === b) ? input.subarray(UTF8_BOM.length) : input;
  if (!bytes.length) return [{ kind: 'skip', name: '', problem: 'the file is empty', note: null }];
  // Bit 7 starts every OpenPGP packet header (RFC 9580 §4.2); text and DER never have it in byte one.
  if (bytes[0]! & 0x80) return [{ kind: 'openpgp', name: 'binary OpenPGP data', binary: bytes }];
  // DER: a SEQUENCE with a long-form length; every certificate is longer than 127 bytes.
  if (bytes[0] === 0x30 && bytes[1]! >= 0x81 && bytes[1]! <= 0x84) return [{ kind: 'der', name: 'DER certificate', der: Buffer.from(bytes) }];
  const blocks = [...Buffer.from(bytes).toString('utf8').matchAll(ARMOR_BLOCK)];
  if (!blocks.length) {
    return [{ kind: 'skip', name: '', problem: 'neither an OpenPGP key nor an X.509 certificate (no armored or PEM block, not binary OpenPGP, not DER)', note: null }];
  }
  const numbered = blocks.length > 1;
  return blocks.map(([text, label = ''], i) => {
    const name = numbered ? `block ${i + 1} (${label})` : label;
    if (label === 'PGP PUBLIC KEY BLOCK' || label === 'PGP PRIVATE KEY BLOCK' || label === 'PGP SIGNATURE') return { kind: 'openpgp-armored', name, text };
    if (label === 'CERTIFICATE') return { kind: 'der', name, der: Buffer.from(text.replace(/-----[A-Z0-9 ]+-----/g, ''), 'base64') };
    if (label.endsWith('PRIVATE KEY')) return { kind: 'skip', name, problem: null, note: 'a private key, ignored (private keys are never stored)' };
    return { kind: 'skip', name, problem: `not a key or certificate block (${label})`, note: null };
  });
}

/** A message about one part of the file; '' names the whole file, which the caller names. */
function named(part: string, message: string): string {
  return part ? `${part}: ${message}` : message;
}

async function unarmor(text: string): Promise<Uint8Array> {
  const { data } = await openpgp.unarmor(text);
  // A string in gives bytes out; openpgp's type also allows a stream.
  if (!(data instanceof Uint8Array)) throw new Error('unexpected streamed armor');
  return data;
}
