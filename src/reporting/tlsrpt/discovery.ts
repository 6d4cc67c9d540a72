// Where a recipient domain wants its TLS reports: the TXT record at
// `_smtp._tls.<domain>` (RFC 8460 §3), looked up through the configured resolvers.
//
// Policy (§3):
// - records not beginning with "v=TLSRPTv1" followed by ";" are discarded; unless
//   exactly one remains, the domain does not take reports (several = none, not the first);
// - fields are separated by ";" with optional blanks; unknown fields are ignored; the
//   record must name rua (§3: required), a comma-separated list of URIs;
// - a URI is used only when it is `mailto:` with one plausible address, or `https:`
//   with a host; others (other schemes, junk) are ignored, and a record left with none
//   takes no reports. At most MAX_DESTINATIONS are kept: a hostile record cannot make
//   the relay send one report a hundred times.
import { domainToASCII } from 'node:url';
import { ABSENT_CODES, errorCode, makeResolver } from '../../net/dns.ts';

export type TlsRptDiscovery =
  | { readonly kind: 'record'; readonly rua: readonly string[]; readonly ignored: readonly string[] }
  | { readonly kind: 'none'; readonly reason: string }
  | { readonly kind: 'error'; readonly reason: string };

/** More destinations than this in one record are not sent to. */
export const MAX_DESTINATIONS = 5;
/** A URI longer than this is not used (it would end up in headers and logs). */
const MAX_URI_CHARS = 1024;
/** §3: tlsrpt-version followed by field-delim (*WSP ";" *WSP). */
const VERSION_PREFIX = /^v=TLSRPTv1[ \t]*;/;
const FIELD = /^([A-Za-z0-9][A-Za-z0-9_.-]{0,31})=(.*)$/s;
/** An address we are willing to put on an envelope: no blanks, brackets, quotes or controls. */
const ADDRESS = /^[^\s<>"(),;:@\\[\]]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?)+$/;

/** `_smtp._tls.<domain>`, the domain lower case as an A-label. */
export function tlsRptName(domain: string): string {
  const name = domain.trim().toLowerCase().replace(/\.$/, '');
  return `_smtp._tls.${/[^ -~]/.test(name) ? domainToASCII(name) || name : name}`;
}

/** One rua URI made usable (normalised), or null when it is not one we send to. */
export function usableUri(raw: string): string | null {
  const uri = raw.trim();
  // eslint-disable-next-line no-control-regex -- controls and blanks are exactly what is refused
  if (!uri || uri.length > MAX_URI_CHARS || /[\x00-\x20\x7f]/.test(uri)) return null;
  if (/^mailto:/i.test(uri)) {
    // RFC 6068: mailto:addr[?hfields]; header fields and several addresses are not for us.
    const to = uri.slice('mailto:'.length).split('?')[0]!;
    let address: string;
    try {
      address = decodeURIComponent(to);
    } catch {
      return null;
    }
    return ADDRESS.test(address) ? `mailto:${address}` : null;
  }
  if (/^https:/i.test(uri)) {
    let url: URL;
    try {
      url = new URL(uri);
    } catch {
      return null;
    }
    if (url.protocol !== 'https:' || !url.hostname || url.username || url.password) return null;
    return url.href;
  }
  return null;
}

/** The destinations of one TXT record's text, or why it takes no reports. */
export function parseTlsRptRecord(text: string): TlsRptDiscovery {
  if (!VERSION_PREFIX.test(text)) return { kind: 'none', reason: 'not a v=TLSRPTv1 record' };
  const fields = text.split(';').map((f) => f.replace(/^[ \t]+|[ \t]+$/g, ''));
  if (fields.at(-1) === '') fields.pop();
  let rua: string | null = null;
  for (const field of fields.slice(1)) {
    const m = FIELD.exec(field);
    if (!m) return { kind: 'none', reason: `invalid field "${field.slice(0, 80)}"` };
    if (m[1] === 'rua') rua ??= m[2]!;
  }
  if (rua === null) return { kind: 'none', reason: 'no rua= field' };
  const given = rua.split(',').map((u) => u.trim()).filter(Boolean);
  const used: string[] = [];
  const ignored: string[] = [];
  for (const raw of given) {
    const uri = usableUri(raw);
    if (uri && !used.includes(uri) && used.length < MAX_DESTINATIONS) used.push(uri);
    else if (!uri) ignored.push(raw.slice(0, 200));
  }
  if (!used.length) return { kind: 'none', reason: `no usable mailto: or https: URI in rua (${given.length} given)` };
  return { kind: 'record', rua: used, ignored };
}

/** Looks up `_smtp._tls.<domain>` TXT through `dnsServers` and returns where reports go. */
export async function discoverTlsRpt(domain: string, opts: { readonly dnsServers: readonly string[]; readonly timeoutMs: number }): Promise<TlsRptDiscovery> {
  const name = tlsRptName(domain);
  let records: string[][];
  try {
    records = await makeResolver(opts).resolveTxt(name);
  } catch (err) {
    const code = errorCode(err);
    if (ABSENT_CODES.has(code)) return { kind: 'none', reason: `no TXT record at ${name}` };
    return { kind: 'error', reason: `TXT lookup of ${name}: ${code}` };
  }
  // §3: the strings of one record are joined without anything between them.
  const candidates = records.map((strings) => strings.join('')).filter((text) => VERSION_PREFIX.test(text));
  if (candidates.length === 0) return { kind: 'none', reason: `no v=TLSRPTv1 TXT record at ${name}` };
  if (candidates.length > 1) return { kind: 'none', reason: `${candidates.length} v=TLSRPTv1 TXT records at ${name} (exactly one allowed)` };
  return parseTlsRptRecord(candidates[0]!);
}
