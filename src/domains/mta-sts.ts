// MTA-STS (RFC 8461): discover a recipient domain's policy and check MX hosts against it.
//
// Policy, in the order discovery applies it:
// - TXT `_mta-sts.<domain>` (§3.1): records not beginning "v=STSv1;" are discarded;
//   unless exactly one remains and it parses, the domain has no usable policy (`none`).
//   NXDOMAIN/NODATA is `none` too; SERVFAIL, timeouts and refusals are temporary errors.
// - HTTPS GET https://mta-sts.<domain>/.well-known/mta-sts.txt (§3.3): SNI and the
//   certificate name are mta-sts.<domain>, the chain must lead to the configured trust
//   store (the system store when none is configured); only 200 with a text/plain body
//   counts; redirects are never followed; the body is capped at POLICY_MAX_BYTES and
//   the whole fetch at `timeoutMs` (the transport itself is net/https-get.ts).
// - The policy file (§3.2): version STSv1, mode testing|enforce|none, max_age in
//   seconds up to MAX_AGE_LIMIT_S, one or more mx patterns (required unless mode is
//   none); unknown keys are ignored, a repeated non-mx key keeps its first value.
// What to do with a result over time (caching, id changes, refresh, failures) is
// mta-sts-cache.ts's job; this module only fetches once and judges.
//
// Why not mailauth's lib/mta-sts (4.13): its DNS resolver can be injected, but its
// fetchPolicy hard-codes port 443, takes no trust store (it would use https.globalAgent,
// so a test CA could only be added process-wide), checks neither content type nor body
// size, and its fixed 15 s timeout is not configurable; its resolvePolicy treats several
// TXT records as an error rather than "no policy" (§3.1); and its validateMx lets
// "*.example.com" match any depth ("a.b.example.com"), against §4.1. What remains useful
// (parsePolicy) is a few lines, not worth a dependency that brings its own nodemailer.
import { domainToASCII } from 'node:url';
import { httpsGet, HttpsGetError, type HttpsResponse } from '../net/https-get.ts';
import { ABSENT_CODES, errorCode, makeResolver } from '../net/dns.ts';

export type MtaStsMode = 'enforce' | 'testing' | 'none';

/** A policy as fetched; `maxAge` in seconds, `fetchedAt` in ms since the epoch. */
export interface MtaStsPolicy {
  readonly kind: 'policy';
  /** The TXT record's id the policy was fetched under. */
  readonly id: string;
  readonly mode: MtaStsMode;
  /** Patterns, lower case, without trailing dot: "mx1.example.com" or "*.example.com". */
  readonly mx: readonly string[];
  readonly maxAge: number;
  readonly fetchedAt: number;
}

/** No usable policy: no TXT record, or none that is valid (§3.1; `invalid` tells which). */
export interface MtaStsNone {
  readonly kind: 'none';
  readonly reason: string;
  readonly invalid: boolean;
}

/**
 * Discovery failed. `temporary`: it may pass on its own (DNS timeout or SERVFAIL,
 * connection refused or reset, HTTP 5xx, fetch timeout); otherwise the domain's setup
 * is wrong (404, redirect, bad certificate, wrong content type, invalid policy).
 */
export interface MtaStsError {
  readonly kind: 'error';
  readonly reason: string;
  readonly temporary: boolean;
}

export type MtaStsResult = MtaStsNone | MtaStsPolicy | MtaStsError;

export interface MtaStsFetchOptions {
  /** "ip" or "ip:port"; empty uses c-ares' defaults (resolv.conf). */
  readonly dnsServers: readonly string[];
  /** DNS per-query timeout, and the deadline of the whole HTTPS fetch, in ms. */
  readonly timeoutMs: number;
  /** Trust store (PEM) for the HTTPS fetch; the system store when absent. */
  readonly ca?: string | Buffer;
  /** HTTPS port of the policy host (RFC 8461: 443; tests change it). */
  readonly port?: number;
  /** Address of mta-sts.<domain>; by default its A, then AAAA, through `dnsServers`. */
  readonly resolveHost?: (host: string) => string | Promise<string>;
  /** Clock for `fetchedAt` (ms since the epoch); tests pin it. */
  readonly now?: () => number;
}

/** §3.3: "a maximum size for the policy ... e.g. 64 kilobytes". */
export const POLICY_MAX_BYTES = 64 * 1024;
/** §3.2: max_age is at most 31557600 s (about one year). */
export const MAX_AGE_LIMIT_S = 31_557_600;
export const POLICY_PATH = '/.well-known/mta-sts.txt';

const fail = (reason: string, temporary: boolean): MtaStsError => ({ kind: 'error', reason, temporary });

/** Lower case, no trailing dot, U-labels as A-labels (an internationalised domain's DNS name). */
function normalizeDomain(domain: string): string {
  const name = domain.trim().toLowerCase().replace(/\.$/, '');
  // domainToASCII returns '' for what it cannot convert; keep the name then, it will simply not match.
  return /[^ -~]/.test(name) ? domainToASCII(name) || name : name;
}


// ---- TXT record (§3.1) ----

/** §3.1: sts-id = 1*32(ALPHA / DIGIT). */
const STS_ID = /^[A-Za-z0-9]{1,32}$/;
/** §3.1: sts-ext-name "=" sts-ext-value (id has the same shape). */
const STS_FIELD = /^([A-Za-z0-9][A-Za-z0-9_.-]{0,31})=([\x21-\x3a\x3c\x3e-\x7e]+)$/;
/** Records not beginning with "v=STSv1;" are discarded (§3.1); WSP may precede the ";". */
const STS_VERSION_PREFIX = /^v=STSv1[ \t]*;/;

/** The id of one TXT record's text, or null when the record is not valid per §3.1. */
export function parseStsRecord(text: string): string | null {
  if (!STS_VERSION_PREFIX.test(text)) return null;
  const fields = text.split(';').map((field) => field.replace(/^[ \t]+|[ \t]+$/g, ''));
  // A trailing separator is allowed ([sts-sep]); an empty field anywhere else is not.
  if (fields.at(-1) === '') fields.pop();
  let id: string | null = null;
  for (const field of fields.slice(1)) {
    const m = STS_FIELD.exec(field);
    if (!m) return null;
    if (m[1] === 'id') {
      if (!STS_ID.test(m[2]!)) return null;
      id ??= m[2]!;
    }
  }
  return id;
}

export type MtaStsRecord = MtaStsNone | MtaStsError | { readonly kind: 'record'; readonly id: string };

/** Looks up `_mta-sts.<domain>` TXT and returns the policy id it announces. */
export async function lookupMtaStsRecord(
  domain: string,
  opts: Pick<MtaStsFetchOptions, 'dnsServers' | 'timeoutMs'>,
): Promise<MtaStsRecord> {
  const name = `_mta-sts.${normalizeDomain(domain)}`;
  let records: string[][];
  try {
    records = await makeResolver(opts).resolveTxt(name);
  } catch (err) {
    const code = errorCode(err);
    if (ABSENT_CODES.has(code)) return { kind: 'none', reason: `no TXT record at ${name}`, invalid: false };
    return fail(`TXT lookup of ${name}: ${code}`, true);
  }
  // §3.1: the strings of one record are concatenated without spaces.
  const candidates = records.map((strings) => strings.join('')).filter((text) => STS_VERSION_PREFIX.test(text));
  if (candidates.length === 0) return { kind: 'none', reason: `no v=STSv1 TXT record at ${name}`, invalid: false };
  if (candidates.length > 1) return { kind: 'none', reason: `${candidates.length} v=STSv1 TXT records at ${name} (exactly one allowed)`, invalid: true };
  const id = parseStsRecord(candidates[0]!);
  if (id === null) return { kind: 'none', reason: `invalid TXT record at ${name}: "${candidates[0]}"`, invalid: true };
  return { kind: 'record', id };
}

// ---- Policy file (§3.2) ----

/** §3.2 sts-policy-mx-value: an optional "*." then domain labels (letters, digits, "_", "-"). */
const MX_PATTERN = /^(?:\*\.)?[a-z0-9_-]+(?:\.[a-z0-9_-]+)*$/;
const MAX_AGE_VALUE = /^[0-9]{1,10}$/;
const POLICY_KEY = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$/;

export type ParsedPolicy = { readonly mode: MtaStsMode; readonly mx: readonly string[]; readonly maxAge: number };

/** The policy in `text`, or the reason it is invalid. */
export function parsePolicyText(text: string): { ok: true; policy: ParsedPolicy } | { ok: false; reason: string } {
  const first = new Map<string, string>();
  const mx: string[] = [];
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.replace(/^[ \t]+|[ \t]+$/g, '');
    // Tolerated although the grammar has none: blank lines, as many servers end with a few.
    if (line === '') continue;
    const colon = line.indexOf(':');
    if (colon < 1) return { ok: false, reason: `line "${line.slice(0, 80)}" is not "key: value"` };
    const key = line.slice(0, colon);
    const value = line.slice(colon + 1).replace(/^[ \t]+/, '');
    if (!POLICY_KEY.test(key)) return { ok: false, reason: `invalid key "${key.slice(0, 40)}"` };
    if (key === 'mx') {
      const pattern = value.toLowerCase().replace(/\.$/, '');
      if (!MX_PATTERN.test(pattern)) return { ok: false, reason: `invalid mx pattern "${value.slice(0, 80)}"` };
      if (!mx.includes(pattern)) mx.push(pattern);
    } else if (!first.has(key)) {
      // §3.2: a repeated non-mx field keeps its first value; unknown keys are ignored.
      first.set(key, value);
    }
  }
  // Keys and values are case-sensitive (%s in the ABNF).
  const version = first.get('version');
  if (version !== 'STSv1') return { ok: false, reason: version === undefined ? 'no version field' : `version "${version}" is not STSv1` };
  const mode = first.get('mode');
  if (mode !== 'enforce' && mode !== 'testing' && mode !== 'none') {
    return { ok: false, reason: mode === undefined ? 'no mode field' : `mode "${mode}" is not enforce, testing or none` };
  }
  const maxAgeText = first.get('max_age');
  if (maxAgeText === undefined) return { ok: false, reason: 'no max_age field' };
  if (!MAX_AGE_VALUE.test(maxAgeText)) return { ok: false, reason: `max_age "${maxAgeText}" is not a number of seconds` };
  const maxAge = Number(maxAgeText);
  if (maxAge > MAX_AGE_LIMIT_S) return { ok: false, reason: `max_age ${maxAge} exceeds ${MAX_AGE_LIMIT_S}` };
  // mode none withdraws a policy (§8.3) and may list no MX; the others must list some.
  if (mode !== 'none' && mx.length === 0) return { ok: false, reason: `mode ${mode} without any mx field` };
  return { ok: true, policy: { mode, mx, maxAge } };
}

// ---- HTTPS fetch (§3.3) ----

/** GETs the policy file of `domain` (already normalised): its text, or why there is none. */
async function getPolicyText(domain: string, opts: MtaStsFetchOptions): Promise<string | MtaStsError> {
  let res: HttpsResponse;
  try {
    res = await httpsGet(`mta-sts.${domain}`, POLICY_PATH, { ...opts, maxBytes: POLICY_MAX_BYTES, accept: 'text/plain' });
  } catch (err) {
    if (err instanceof HttpsGetError) return fail(err.reason, err.temporary);
    // A caller's resolveHost that throws.
    return fail(`policy fetch for ${domain}: ${(err as Error).message}`, true);
  }
  if (res.status !== 200) {
    const detail =
      res.status >= 300 && res.status < 400
        ? `redirect ${res.status} to ${res.location ?? '(no location)'} not followed (RFC 8461 §3.3)`
        : `HTTP ${res.status}`;
    return fail(`${res.url}: ${detail}`, res.status >= 500);
  }
  // §3.3: the media type must be text/plain (parameters such as charset allowed).
  const mediaType = (res.contentType ?? '').split(';')[0]!.trim().toLowerCase();
  if (mediaType !== 'text/plain') return fail(`${res.url}: content type "${res.contentType ?? ''}" is not text/plain`, false);
  return res.body.toString('utf8');
}

/** Fetches and parses the policy announced under `id`; the TXT record is not consulted. */
export async function fetchMtaStsPolicyFile(domain: string, id: string, opts: MtaStsFetchOptions): Promise<MtaStsPolicy | MtaStsError> {
  const name = normalizeDomain(domain);
  const text = await getPolicyText(name, opts);
  if (typeof text !== 'string') return text;
  const parsed = parsePolicyText(text);
  if (!parsed.ok) return fail(`invalid policy at https://mta-sts.${name}${POLICY_PATH}: ${parsed.reason}`, false);
  return { kind: 'policy', id, ...parsed.policy, fetchedAt: (opts.now ?? Date.now)() };
}

/** Full discovery: TXT record, then the HTTPS policy it announces. */
export async function fetchMtaStsPolicy(domain: string, opts: MtaStsFetchOptions): Promise<MtaStsResult> {
  const record = await lookupMtaStsRecord(domain, opts);
  if (record.kind !== 'record') return record;
  return fetchMtaStsPolicyFile(domain, record.id, opts);
}

// ---- MX matching (§4.1) ----

/**
 * §4.1: a pattern matches the MX host name exactly (case-insensitive, trailing dot
 * ignored), or, as "*.example.com", with exactly one extra left-most label:
 * "mx1.example.com" matches, "example.com" and "a.mx1.example.com" do not.
 */
export function mxMatches(pattern: string, host: string): boolean {
  const p = normalizeDomain(pattern);
  const h = normalizeDomain(host);
  if (!p || !h) return false;
  if (!p.startsWith('*.')) return p === h;
  const dot = h.indexOf('.');
  return dot > 0 && h.slice(dot + 1) === p.slice(2);
}

export type MxCheck = { readonly ok: true; readonly pattern: string | null } | { readonly ok: false; readonly reason: string };

/**
 * Whether delivery to `mxHost` is allowed by the policy's mx list. Modes none (and
 * "absent", for callers passing a cache state) allow every host (`pattern` null). For
 * testing the caller records a failure but still delivers (§5); for enforce it must not
 * deliver to that host (§4.2). The certificate must in any case be valid for `mxHost`.
 */
export function checkMx(policy: { readonly mode: string; readonly mx: readonly string[] }, mxHost: string): MxCheck {
  if (policy.mode !== 'enforce' && policy.mode !== 'testing') return { ok: true, pattern: null };
  const pattern = policy.mx.find((p) => mxMatches(p, mxHost));
  if (pattern !== undefined) return { ok: true, pattern };
  return { ok: false, reason: `MX ${normalizeDomain(mxHost)} does not match the MTA-STS policy (mx: ${policy.mx.join(', ')})` };
}
