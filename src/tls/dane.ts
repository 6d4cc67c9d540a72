// DANE certificate matching for SMTP (RFC 7672 §3, RFC 7671 §5): which TLSA records
// the relay may use, and whether the chain a peer presented matches one of them.
// Pure: the DNSSEC lookup (net/dnssec.ts) and the handshake (delivery/) live
// elsewhere; this gets records and DER bytes and says which record matched, or the
// closest reason none did. Records and certificates both come from outside: every
// count is capped and a certificate that does not parse is simply never a match.
import { X509Certificate, createHash, createPublicKey, type KeyObject } from 'node:crypto';
import type { TlsaRecord } from '../net/dnssec.ts';

/** RFC 6698 §2.1.1 certificate usages; only these two are for SMTP (RFC 7672 §3.1). */
const DANE_TA = 2;
const DANE_EE = 3;
/** RFC 6698 §2.1.2 selectors. */
const SELECTOR_CERT = 0;
const SELECTOR_SPKI = 1;
/** RFC 6698 §2.1.3 matching types: Full(0) is the data itself, the others a digest of it. */
const MATCH_FULL = 0;
const DIGESTS: ReadonlyMap<number, { readonly algorithm: string; readonly length: number }> = new Map([
  [1, { algorithm: 'sha256', length: 32 }],
  [2, { algorithm: 'sha512', length: 64 }],
]);

/** A TLSA RRset is the domain's, but we still do not loop over an unbounded one. */
export const MAX_TLSA_RECORDS = 32;
/** Certificates of the presented chain considered (leaf included); real chains have 2–4. */
const MAX_CHAIN = 10;
/** Path-building steps: a hostile chain of mutually-issuing certificates must not make us search for long. */
const MAX_PATH_STEPS = 200;

/** RFC 7672 §3.1.3: only DANE-TA(2) and DANE-EE(3) are usable; selectors 0/1, matching 0/1/2; PKIX usages and unknown values are dropped. */
export function usableTlsa(records: readonly TlsaRecord[]): TlsaRecord[] {
  const usable: TlsaRecord[] = [];
  for (const record of records) {
    if (usable.length === MAX_TLSA_RECORDS) break;
    if (isUsable(record)) usable.push(record);
  }
  return usable;
}

function isUsable(r: TlsaRecord): boolean {
  // PKIX-TA(0)/PKIX-EE(1) would need the public CA store, which an SMTP client does
  // not consult for DANE (RFC 7672 §3.1.3); unknown values are unusable (RFC 7671 §4).
  if (r.usage !== DANE_TA && r.usage !== DANE_EE) return false;
  if (r.selector !== SELECTOR_CERT && r.selector !== SELECTOR_SPKI) return false;
  if (r.matchingType === MATCH_FULL) return r.data.length > 0;
  // A digest of the wrong length is malformed and discarded before matching (RFC 7671 §9).
  return DIGESTS.get(r.matchingType)?.length === r.data.length;
}

/** "3 1 1 ab12…" presentation form (hex lower case), for records and logs. */
export function formatTlsa(r: TlsaRecord): string {
  return `${r.usage} ${r.selector} ${r.matchingType} ${r.data.toString('hex')}`;
}

export type DaneMatch = { readonly ok: true; readonly matched: string /* formatTlsa of the record */; readonly depth: number /* 0 = leaf */ } | { readonly ok: false; readonly reason: string };

/** One certificate as the peer sent it; parsing and digests happen once, on demand. */
class Presented {
  private parsed: X509Certificate | null | undefined;
  private spkiDer: Buffer | null | undefined;
  private readonly digests = new Map<string, Buffer>();
  /** Memoised: path building asks the same question along many paths. */
  private readonly issuers = new Map<Presented | DnsAnchor, boolean>();

  constructor(readonly der: Buffer) {}

  /** null when the bytes are not a certificate node:crypto can read. */
  get x509(): X509Certificate | null {
    if (this.parsed === undefined) {
      try {
        this.parsed = new X509Certificate(this.der);
      } catch {
        this.parsed = null;
      }
    }
    return this.parsed;
  }

  /** What a selector covers: Cert(0) the DER as presented, SPKI(1) the SubjectPublicKeyInfo (RFC 6698 §2.1.2). */
  private selected(selector: number): Buffer | null {
    if (selector === SELECTOR_CERT) return this.der;
    if (this.spkiDer === undefined) this.spkiDer = spkiOf(this.x509);
    return this.spkiDer;
  }

  /** This certificate was issued and signed by `parent`, a presented certificate or an anchor from DNS. */
  issuedBy(parent: Presented | DnsAnchor): boolean {
    let known = this.issuers.get(parent);
    if (known === undefined) {
      const child = this.x509;
      if (!child) known = false;
      else if (parent instanceof Presented) known = parent.x509 !== null && issuedBy(child, parent.x509);
      else known = parent.cert ? issuedBy(child, parent.cert) : signedByKey(child, parent.key);
      this.issuers.set(parent, known);
    }
    return known;
  }

  matches(r: TlsaRecord): boolean {
    const data = this.selected(r.selector);
    if (!data) return false;
    if (r.matchingType === MATCH_FULL) return data.equals(r.data);
    const digest = DIGESTS.get(r.matchingType);
    if (!digest) return false;
    const key = `${r.selector}/${r.matchingType}`;
    let value = this.digests.get(key);
    if (!value) this.digests.set(key, (value = createHash(digest.algorithm).update(data).digest()));
    return value.equals(r.data);
  }
}

function spkiOf(x509: X509Certificate | null): Buffer | null {
  if (!x509) return null;
  try {
    return x509.publicKey.export({ type: 'spki', format: 'der' });
  } catch {
    // A key type node:crypto cannot export: no SPKI record can match it.
    return null;
  }
}

/** A trust anchor that came only from DNS (RFC 7671 §5.2.2 "2 0 0", §5.2.3 "2 1 0"). */
interface DnsAnchor {
  readonly record: TlsaRecord;
  /** The TA certificate for "2 0 0"; null for a bare key. */
  readonly cert: X509Certificate | null;
  readonly key: KeyObject;
}

function dnsAnchor(record: TlsaRecord): DnsAnchor | null {
  // Only Full(0) data carries a key that can check a signature; a digest cannot.
  if (record.usage !== DANE_TA || record.matchingType !== MATCH_FULL) return null;
  try {
    if (record.selector === SELECTOR_CERT) {
      const cert = new X509Certificate(record.data);
      return { record, cert, key: cert.publicKey };
    }
    return { record, cert: null, key: createPublicKey({ key: record.data, format: 'der', type: 'spki' }) };
  } catch {
    return null;
  }
}

/** child was issued and signed by parent, and parent may issue certificates (RFC 5280 §6.1.4 (k)). */
function issuedBy(child: X509Certificate, parent: X509Certificate): boolean {
  if (!parent.ca) return false;
  try {
    // checkIssued compares names, key identifiers and keyUsage; verify checks the signature.
    return child.checkIssued(parent) && child.verify(parent.publicKey);
  } catch {
    return false;
  }
}

function signedByKey(child: X509Certificate, key: KeyObject): boolean {
  try {
    return child.verify(key);
  } catch {
    return false;
  }
}

/** Why a certificate is outside its validity at `now`, or null when it is within it. */
function validityProblem(cert: X509Certificate, depth: number, now: Date): string | null {
  const notBefore = Date.parse(cert.validFrom);
  const notAfter = Date.parse(cert.validTo);
  const which = `depth ${depth} (${describe(cert)})`;
  // An unreadable date fails closed.
  if (!Number.isFinite(notAfter) || now.getTime() > notAfter) return `certificate expired: ${which} was valid until ${cert.validTo}`;
  if (!Number.isFinite(notBefore) || now.getTime() < notBefore) return `certificate not yet valid: ${which} is valid from ${cert.validFrom}`;
  return null;
}

/** Subject for a reason; a peer's certificate is hostile text, so it is cut short. */
function describe(cert: X509Certificate): string {
  return cert.subject.replace(/\n/g, ', ').slice(0, 120);
}

/** Reference identifiers compare without case and without a trailing dot (RFC 7672 §3.2.3). */
function normaliseName(name: string): string {
  return name.trim().toLowerCase().replace(/\.+$/, '');
}

/**
 * RFC 7672 §3.2.3 via OpenSSL's X509_check_host: subjectAltName dNSNames; the subject
 * CN only when there are none; a wildcard only as the whole left-most label, matching
 * exactly one label (RFC 6125 §6.4.3).
 */
function namesOneOf(leaf: X509Certificate, names: readonly string[]): boolean {
  return names.some((name) => leaf.checkHost(name, { subject: 'default', wildcards: true, partialWildcards: false, multiLabelWildcards: false, singleLabelSubdomains: false }) !== undefined);
}

/** How far a DANE-TA attempt got; a later stage is the closer failure to report. */
const Stage = { NoAnchor: 0, NotVerified: 1, OutOfValidity: 2, NameMismatch: 3 } as const;
type Stage = (typeof Stage)[keyof typeof Stage];

/**
 * chain: the peer's certificates as presented, leaf first (DER Buffers);
 * names: reference identifiers for DANE-TA name checks (RFC 7672 §3.2.2: the TLSA base domain, i.e. MX host after secure CNAME expansion, and the MX host name);
 * DANE-EE(3): no name or expiry checks (§3.1.1). DANE-TA(2): the chain from the leaf must verify up to the matched TA (cert or bare key), the leaf must name one of `names`, validity dates checked.
 */
export function matchDane(usable: readonly TlsaRecord[], chain: readonly Buffer[], names: readonly string[], now: Date = new Date()): DaneMatch {
  // Filtered again: a caller handing in the raw RRset must not get PKIX usages honoured.
  const records = usableTlsa(usable);
  if (!records.length) return { ok: false, reason: 'no usable TLSA records' };
  const certs = chain.slice(0, MAX_CHAIN).map((der) => new Presented(der));
  const leaf = certs[0];
  if (!leaf) return { ok: false, reason: 'the server presented no certificate' };

  // DANE-EE(3): the leaf itself is pinned; its names, issuer and dates do not matter (RFC 7672 §3.1.1).
  for (const r of records) if (r.usage === DANE_EE && leaf.matches(r)) return { ok: true, matched: formatTlsa(r), depth: 0 };

  const taRecords = records.filter((r) => r.usage === DANE_TA);
  const noMatch = `no TLSA record matches the leaf certificate or any issuer`;
  if (!taRecords.length) return { ok: false, reason: noMatch };
  const leafX509 = leaf.x509;
  if (!leafX509) return { ok: false, reason: `${noMatch} (the leaf certificate cannot be parsed)` };

  // DANE-TA(2): a trust anchor is an issuer in the chain (depth ≥ 1) that a record
  // matches (RFC 7672 §3.1.2), or, when the server left it out, one given in full in
  // DNS (RFC 7671 §5.2.2, §5.2.3).
  const inChain = new Map<Presented, TlsaRecord>();
  for (const cert of certs.slice(1)) {
    const record = taRecords.find((r) => cert.matches(r));
    if (record) inChain.set(cert, record);
  }
  const fromDns = taRecords.map(dnsAnchor).filter((a): a is DnsAnchor => a !== null);
  if (!inChain.size && !fromDns.length) {
    if (taRecords.some((r) => leaf.matches(r))) return { ok: false, reason: `${noMatch} (a DANE-TA record matches the leaf itself; a pinned leaf is published as DANE-EE(3))` };
    const hint = taRecords.some((r) => r.matchingType !== MATCH_FULL) ? ' (a DANE-TA digest needs the trust-anchor certificate in the chain the server sends, RFC 7671 §5.2.2)' : '';
    return { ok: false, reason: `${noMatch}${hint}` };
  }

  const refNames = names.map(normaliseName).filter((name) => name.length > 0);
  let best: { stage: Stage; reason: string } = { stage: Stage.NoAnchor, reason: noMatch };
  const note = (stage: Stage, reason: string): null => {
    if (stage > best.stage) best = { stage, reason };
    return null;
  };
  for (const [cert, record] of inChain) note(Stage.NotVerified, `chain does not verify to the DANE-TA certificate ${formatTlsa(record)}${presentedOrderFault(certs, cert)}`);
  if (!inChain.size) note(Stage.NotVerified, `chain does not verify to the DANE-TA key or certificate in DNS ${fromDns.map((a) => formatTlsa(a.record)).join(', ')}`);

  /** The path reached a trust anchor: now dates (every certificate up to the anchor) and the leaf's name. */
  const accept = (path: readonly X509Certificate[], record: TlsaRecord, depth: number, anchorCert: X509Certificate | null): DaneMatch | null => {
    const dated = anchorCert && path.at(-1) !== anchorCert ? [...path, anchorCert] : path;
    for (const [i, cert] of dated.entries()) {
      const problem = validityProblem(cert, i, now);
      if (problem) return note(Stage.OutOfValidity, problem);
    }
    // RFC 7672 §3.2.2: with DANE-TA the leaf must carry one of the reference identifiers.
    if (!namesOneOf(leafX509, refNames)) {
      const names = refNames.length ? refNames.join(' or ') : '(no reference name given)';
      const san = leafX509.subjectAltName ? `; it names ${leafX509.subjectAltName.slice(0, 200)}` : `; it has no DNS names (subject ${describe(leafX509)})`;
      return note(Stage.NameMismatch, `certificate does not name ${names}${san}`);
    }
    return { ok: true, matched: formatTlsa(record), depth };
  };

  // Depth-first path building from the leaf, over the presented certificates in any
  // order (servers do send them out of order), each used at most once per path.
  let steps = 0;
  const path: Presented[] = [leaf];
  const search = (): DaneMatch | null => {
    if (++steps > MAX_PATH_STEPS) return null;
    const top = path.at(-1)!;
    const topX509 = top.x509!;
    const x509Path = path.map((p) => p.x509!);
    const record = inChain.get(top);
    if (record) {
      const result = accept(x509Path, record, path.length - 1, topX509);
      if (result) return result;
    }
    for (const anchor of fromDns) {
      if (!top.issuedBy(anchor)) continue;
      const result = accept(x509Path, anchor.record, path.length, anchor.cert);
      if (result) return result;
    }
    if (path.length >= MAX_CHAIN) return null;
    for (const next of certs) {
      if (path.includes(next) || !top.issuedBy(next)) continue;
      path.push(next);
      const result = search();
      path.pop();
      if (result) return result;
    }
    return null;
  };
  return search() ?? { ok: false, reason: best.reason };
}

/** For a reason: the first link of the chain as presented, up to the anchor, that does not verify. */
function presentedOrderFault(certs: readonly Presented[], anchor: Presented): string {
  const end = certs.indexOf(anchor);
  for (let i = 0; i < end; i++) {
    const child = certs[i]!;
    const parent = certs[i + 1]!;
    if (!child.x509 || !parent.x509) return ` (certificate at depth ${child.x509 ? i + 1 : i} cannot be parsed)`;
    if (!parent.x509.ca) return ` (certificate at depth ${i + 1} is not a CA)`;
    if (!child.issuedBy(parent)) return ` (certificate at depth ${i} is not issued by the one at depth ${i + 1})`;
  }
  return '';
}
