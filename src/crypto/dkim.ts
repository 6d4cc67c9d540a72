// DKIM signing (RFC 6376) of outbound mail, so that receivers can tie a message to the
// sending organisation's domain (and DMARC can pass) however the relay delivered it.
//
// Policy:
// - The key is chosen by the From header's domain (RFC 6376 §3.11 does not require it,
//   DMARC alignment does): a key for that domain, else for the nearest parent domain;
//   every key of that domain signs (e.g. RSA and Ed25519 side by side, RFC 8463 §1).
//   No From, several From fields, or From addresses in several domains: not signed.
// - The message is signed as it will be sent: after any encryption has rewritten it.
//   Canonicalization relaxed/relaxed; the algorithm follows the key (rsa-sha256,
//   ed25519-sha256: RFC 8301 retired rsa-sha1); the header fields in SIGNED_HEADERS.
// - Keys are checked when loaded (loadDkimKey), not when mail is sent: RSA or Ed25519,
//   unencrypted PEM, RSA of at least MIN_RSA_BITS.
// Signing itself is mailauth's (4.13) DkimSigner.
import crypto from 'node:crypto';
import { domainToASCII } from 'node:url';
import addressparser from 'nodemailer/lib/addressparser';
import { headerEnd, parseHeaders } from '../mime/header-block.ts';

export interface DkimKey {
  /** The d= domain: lower case A-labels, no trailing dot. */
  readonly domain: string;
  /** The s= selector: the key's TXT record is at <selector>._domainkey.<domain>. */
  readonly selector: string;
  readonly privateKeyPem: string;
}

export interface DkimSigned {
  /** The message with DKIM-Signature fields prepended, or unchanged. */
  readonly message: Buffer;
  /** The d= domain that signed, or null when the message was not signed. */
  readonly signedBy: string | null;
  /** Why the message was not signed (when signedBy is null). */
  readonly reason?: string;
}

/** RFC 8301 §3.2: verifiers must not accept RSA keys shorter than this. */
export const MIN_RSA_BITS = 1024;
export const DEFAULT_RSA_BITS = 2048;
/** Longer keys make TXT records and signing slow for no practical gain. */
const MAX_RSA_BITS = 8192;

/**
 * Header fields signed, where present (RFC 6376 §5.4.1 lists the ones that matter to
 * readers; RFC 8058 §4 requires the List-Unsubscribe pair to be signed). Trace fields
 * added on the way (Received, Return-Path) are not.
 */
export const SIGNED_HEADERS = [
  'From',
  'Sender',
  'Reply-To',
  'To',
  'Cc',
  'Subject',
  'Date',
  'Message-ID',
  'In-Reply-To',
  'References',
  'MIME-Version',
  'Content-Type',
  'Content-Transfer-Encoding',
  'List-Id',
  'List-Unsubscribe',
  'List-Unsubscribe-Post',
] as const;

/** RFC 6376 §3.1: selector = sub-domain *("." sub-domain); "_" tolerated as in the config schema. */
const SELECTOR = /^[A-Za-z0-9](?:[A-Za-z0-9_-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9_-]*[A-Za-z0-9])?)*$/;
const DOMAIN_LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/** Lower case A-labels without a trailing dot; null when not a domain name. */
function normalizeDomain(domain: string): string | null {
  const lower = domain.trim().toLowerCase().replace(/\.$/, '');
  const name = /[^ -~]/.test(lower) ? domainToASCII(lower) : lower;
  const labels = name.split('.');
  return labels.length >= 2 && name.length <= 253 && labels.every((l) => DOMAIN_LABEL.test(l)) ? name : null;
}

function checkDomain(domain: string): string {
  const name = normalizeDomain(domain);
  if (!name) throw new Error(`DKIM domain ${JSON.stringify(domain)} is not a domain name`);
  return name;
}

function checkSelector(selector: string): void {
  if (!SELECTOR.test(selector)) throw new Error(`DKIM selector ${JSON.stringify(selector)} is not a DNS name (letters, digits, - and _, dot-separated)`);
}

/** Validates a signing key; the error says what is wrong with it. */
export function loadDkimKey(domain: string, selector: string, pem: string): DkimKey {
  const name = checkDomain(domain);
  checkSelector(selector);
  let key: crypto.KeyObject;
  try {
    key = crypto.createPrivateKey({ key: pem, format: 'pem' });
  } catch (err) {
    throw new Error(`DKIM key for ${name}: not an unencrypted PEM private key (${(err as Error).message})`);
  }
  const type = key.asymmetricKeyType;
  if (type !== 'rsa' && type !== 'ed25519') throw new Error(`DKIM key for ${name}: ${type ?? 'unknown'} keys cannot sign DKIM (use RSA or Ed25519)`);
  const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
  if (type === 'rsa' && bits < MIN_RSA_BITS) throw new Error(`DKIM key for ${name}: RSA key of ${bits} bits is under ${MIN_RSA_BITS} (RFC 8301)`);
  return Object.freeze({ domain: name, selector, privateKeyPem: pem });
}

/** Unfolded values of the header fields named `name` (case-insensitive). */
function headerValues(message: Buffer, name: string): string[] {
  // UTF-8: an SMTPUTF8 address is UTF-8 in the header (RFC 6532); ASCII reads the same.
  return parseHeaders(message.subarray(0, headerEnd(message)).toString('utf8')).get(name.toLowerCase()) ?? [];
}

/** The one domain of the From header, or why there is none. */
function fromDomain(message: Buffer): { domain: string } | { reason: string } {
  const froms = headerValues(message, 'From');
  if (froms.length !== 1) return { reason: froms.length ? `${froms.length} From header fields` : 'no From header field' };
  const domains = new Set(
    addressparser(froms[0]!, { flatten: true }).map((a) => {
      const at = a.address.lastIndexOf('@');
      return at < 0 ? null : normalizeDomain(a.address.slice(at + 1));
    }),
  );
  if (domains.size !== 1 || domains.has(null)) return { reason: `From ${JSON.stringify(froms[0]!.slice(0, 200))} does not name one domain` };
  return { domain: [...domains][0]! };
}

/** The keys of the configured domain nearest to `domain` (itself, then its parents). */
function keysFor(domain: string, keys: readonly DkimKey[]): DkimKey[] {
  const matching = keys.filter((k) => domain === k.domain || domain.endsWith(`.${k.domain}`));
  const nearest = Math.max(...matching.map((k) => k.domain.length));
  return matching.filter((k) => k.domain.length === nearest);
}

/**
 * Signs the whole message (as it will be sent) for the From header's domain, when a
 * key for that domain (or a parent domain) is configured; returns the message with
 * the DKIM-Signature header prepended, or the message unchanged when no key applies.
 */
export async function signDkim(message: Buffer, keys: readonly DkimKey[]): Promise<DkimSigned> {
  const from = fromDomain(message);
  if ('reason' in from) return { message, signedBy: null, reason: from.reason };
  const signing = keysFor(from.domain, keys);
  if (!signing.length) return { message, signedBy: null, reason: `no DKIM key for ${from.domain}` };
  // mailauth weighs some 20 MB: loaded only by a relay that signs.
  const { dkimSign } = await import('mailauth/lib/dkim/sign.js');
  const result = await dkimSign(message, {
    // Unused: every signature's domain, selector and key come from signatureData.
    signingDomain: signing[0]!.domain,
    selector: signing[0]!.selector,
    privateKey: signing[0]!.privateKeyPem,
    signatureData: signing.map((k) => ({ signingDomain: k.domain, selector: k.selector, privateKey: k.privateKeyPem })),
    canonicalization: 'relaxed/relaxed',
    // mailauth 4.13 reads headerList as one colon-separated string (tools.js
    // getSigningHeaderLines); an array, as its index.d.ts declares, silently falls
    // back to its default list.
    headerList: SIGNED_HEADERS.join(':') as unknown as string[],
  });
  // mailauth reports signing failures as { signingDomain, selector, err } entries, not Errors.
  const errors = result.errors as unknown as Array<{ signingDomain?: string; selector?: string; err?: Error }>;
  if (errors.length) {
    throw new Error(`DKIM signing for ${from.domain} failed: ${errors.map((e) => `${e.selector}._domainkey.${e.signingDomain}: ${e.err?.message}`).join('; ')}`);
  }
  return { message: Buffer.concat([Buffer.from(result.signatures, 'latin1'), message]), signedBy: signing[0]!.domain };
}

/** A new signing key and the DNS TXT record (RFC 6376 §3.6.1) that publishes it. */
export function dkimKeygen(
  domain: string,
  opts: { selector: string; type: 'rsa' | 'ed25519'; bits?: number },
): { privateKeyPem: string; dnsName: string; dnsTxt: string } {
  const name = checkDomain(domain);
  checkSelector(opts.selector);
  const dnsName = `${opts.selector}._domainkey.${name}`;
  if (opts.type === 'ed25519') {
    if (opts.bits !== undefined) throw new Error('Ed25519 keys have a fixed size: bits does not apply');
    const { privateKey, publicKey } = crypto.generateKeyPairSync('ed25519');
    // RFC 8463 §4.2: p= is the bare 32-byte public key, not a SubjectPublicKeyInfo.
    const raw = Buffer.from(publicKey.export({ format: 'jwk' }).x!, 'base64url');
    return { privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), dnsName, dnsTxt: `v=DKIM1; k=ed25519; p=${raw.toString('base64')}` };
  }
  if (opts.type !== 'rsa') throw new Error(`DKIM key type ${JSON.stringify(opts.type)} is not rsa or ed25519`);
  const bits = opts.bits ?? DEFAULT_RSA_BITS;
  if (!Number.isInteger(bits) || bits < MIN_RSA_BITS || bits > MAX_RSA_BITS) throw new Error(`RSA key size ${bits} is not between ${MIN_RSA_BITS} and ${MAX_RSA_BITS} bits`);
  const { privateKey, publicKey } = crypto.generateKeyPairSync('rsa', { modulusLength: bits });
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  return { privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), dnsName, dnsTxt: `v=DKIM1; k=rsa; p=${spki.toString('base64')}` };
}
