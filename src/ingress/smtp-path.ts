// MAIL FROM / RCPT TO arguments, parsed to RFC 5321 §4.1.2 (with RFC 6531's UTF-8
// extensions), in place of smtp-server's own parser (server.ts wires it in). Ours
// differs where smtp-server's loses or changes what the client sent:
//   - a quoted local part ("x y"@example.org) is valid syntax and accepted
//     (smtp-server splits the line at spaces first and answers 501);
//   - the domain is kept as sent (smtp-server converts A-labels to Unicode);
//   - a General-address-literal is refused, IPv4/IPv6 literals are checked.
// Whether an address may be used (8-bit without SMTPUTF8, literals, postmaster) is
// the session's decision (sessions.ts), which can answer with the right code; this
// module only says what the client wrote.
import { isIPv4, isIPv6 } from 'node:net';
import { domainToASCII } from 'node:url';

export interface ParsedPath {
  /** The mailbox, '' for the null reverse-path, 'postmaster' (as sent) for the domainless one. */
  address: string;
  /** ESMTP parameters by upper-case keyword; a keyword without a value is `true`. xtext is decoded. */
  args: Record<string, string | true> | false;
  /** Set when a keyword appears twice (smtp-server answers 501 for it). */
  duplicate?: string;
}

/** RFC 5321 §4.5.3.1.3: a path is at most 256 octets with its angle brackets. */
const MAX_MAILBOX_OCTETS = 254;
const MAX_LABEL_OCTETS = 63;
const MAX_DOMAIN_OCTETS = 255;

// RFC 5322 atext, plus any non-ASCII character (RFC 6531 UTF8-non-ascii); the
// session refuses 8-bit addresses when SMTPUTF8 was not declared.
const ATOM = /^(?:[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]|\P{ASCII})+$/u;
// Letters, digits and hyphen, or a non-ASCII character of a U-label (checked by IDNA below).
const LABEL = /^(?:[A-Za-z0-9]|\P{ASCII})(?:(?:[A-Za-z0-9-]|\P{ASCII})*(?:[A-Za-z0-9]|\P{ASCII}))?$/u;
const KEYWORD = /^[A-Za-z0-9][A-Za-z0-9-]*$/;
// Characters never legitimate in an address: controls (C0, DEL, C1) and the invisible
// formatting characters used to spoof addresses in logs and headers.
// eslint-disable-next-line no-control-regex
const UNSAFE = /[\x00-\x1f\x7f-\x9f\u200b\u2060\ufeff]/;
// eslint-disable-next-line no-control-regex
const CONTROL = /[\x00-\x1f\x7f]/;

/**
 * Parses "MAIL FROM:<path> params" (name 'mail from') or "RCPT TO:<path> params"
 * (name 'rcpt to'). Returns false for a command that is not valid syntax.
 */
export function parsePathCommand(name: 'mail from' | 'rcpt to', line: string): ParsedPath | false {
  const colon = line.indexOf(':');
  if (colon < 0) return false;
  // "MAIL FROM" with one space, any case; tolerate spaces around the colon as most MTAs do.
  if (line.slice(0, colon).trim().replace(/\s+/g, ' ').toLowerCase() !== name) return false;
  const rest = line.slice(colon + 1).replace(/^[ \t]+/, '');
  if (!rest.startsWith('<')) return false;
  const close = closingBracket(rest);
  if (close < 0) return false;
  const inner = rest.slice(1, close);
  const after = rest.slice(close + 1);
  if (after !== '' && !/^[ \t]/.test(after)) return false;

  const address = mailbox(name, inner);
  if (address === null) return false;
  const params = parameters(after.trim());
  if (params === null) return false;
  return params.duplicate ? { address, args: params.args, duplicate: params.duplicate } : { address, args: params.args };
}

/** The index of the '>' that ends the path: quoted strings may hold '>' and escaped quotes. */
function closingBracket(text: string): number {
  let quoted = false;
  for (let i = 1; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '\\') i++;
      else if (c === '"') quoted = false;
    } else if (c === '"') quoted = true;
    else if (c === '>') return i;
    else if (c === '<') return -1;
  }
  return -1;
}

function mailbox(name: 'mail from' | 'rcpt to', path: string): string | null {
  if (path === '') return name === 'mail from' ? '' : null;
  if (UNSAFE.test(path)) return null;
  // RFC 5321 §4.1.2 / Appendix C: a source route is accepted and ignored.
  const route = /^@[^\s,:@]+(?:,@[^\s,:@]+)*:/.exec(path);
  const box = route ? path.slice(route[0].length) : path;
  if (name === 'rcpt to' && box.toLowerCase() === 'postmaster') return box;
  const at = box.lastIndexOf('@');
  if (at <= 0) return null;
  const local = localPart(box.slice(0, at));
  const domain = box.slice(at + 1);
  if (local === null || !validDomain(domain)) return null;
  const address = `${local}@${domain}`;
  return Buffer.byteLength(address) <= MAX_MAILBOX_OCTETS ? address : null;
}

/** A Dot-string as is; a Quoted-string unquoted when its content is a Dot-string (the same mailbox), else kept quoted. */
function localPart(text: string): string | null {
  if (!text.startsWith('"')) return isDotString(text) ? text : null;
  if (text.length < 2 || !text.endsWith('"')) return null;
  let content = '';
  for (let i = 1; i < text.length - 1; i++) {
    const c = text[i] as string;
    if (c === '\\') {
      const next = text[i + 1];
      if (next === undefined || i + 1 === text.length - 1 || CONTROL.test(next)) return null;
      content += next;
      i++;
    } else if (c === '"' || CONTROL.test(c)) return null;
    else content += c;
  }
  if (isDotString(content)) return content;
  return `"${content.replace(/(["\\])/g, '\\$1')}"`;
}

function isDotString(text: string): boolean {
  return text.length > 0 && text.split('.').every((atom) => ATOM.test(atom));
}

function validDomain(domain: string): boolean {
  if (domain.startsWith('[')) {
    if (!domain.endsWith(']')) return false;
    const literal = domain.slice(1, -1);
    if (/^ipv6:/i.test(literal)) return isIPv6(literal.slice(5));
    return isIPv4(literal);
  }
  if (domain.length === 0 || Buffer.byteLength(domain) > MAX_DOMAIN_OCTETS) return false;
  const labels = domain.split('.');
  if (!labels.every((l) => LABEL.test(l) && (isEightBit(l) || l.length <= MAX_LABEL_OCTETS))) return false;
  // U-labels must be valid IDNA (RFC 5890); ASCII names need no conversion.
  return !isEightBit(domain) || domainToASCII(domain) !== '';
}

function parameters(text: string): { args: Record<string, string | true> | false; duplicate?: string } | null {
  if (text === '') return { args: false };
  const args: Record<string, string | true> = {};
  let duplicate: string | undefined;
  for (const param of text.split(/[ \t]+/)) {
    const eq = param.indexOf('=');
    const keyword = (eq < 0 ? param : param.slice(0, eq)).toUpperCase();
    if (!KEYWORD.test(keyword)) return null;
    let value: string | true = true;
    if (eq >= 0 && eq < param.length - 1) {
      const decoded = decodeXtext(param.slice(eq + 1));
      // A control character (CRLF smuggled as xtext "+0D+0A") would reach replies, logs and headers.
      if (decoded === null || CONTROL.test(decoded)) return null;
      value = decoded;
    }
    if (keyword in args) duplicate ??= keyword;
    args[keyword] = value;
  }
  return duplicate ? { args, duplicate } : { args };
}

/** RFC 3461 §4 xtext: "+" and two upper-case hex digits stand for one octet. */
function decodeXtext(text: string): string | null {
  if (!text.includes('+')) return text;
  let bad = false;
  const decoded = text.replace(/\+([0-9A-Fa-f]{2})?/g, (_m, hex: string | undefined) => {
    if (hex === undefined) {
      bad = true;
      return '';
    }
    return String.fromCharCode(parseInt(hex, 16));
  });
  return bad ? null : decoded;
}

/** True when the address holds a character outside US-ASCII (needs SMTPUTF8, RFC 6531). */
export function isEightBit(address: string): boolean {
  return /\P{ASCII}/u.test(address);
}
