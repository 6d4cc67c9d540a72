// The inbound hop's trace: our Received header (RFC 5321 §4.4), a Message-ID when
// the application sent none, and the few header values reports need.
//
//   Received: from app1.example (app1.example [192.0.2.10])
//           by relay.example (SealRelay) with ESMTPSA id 0J3k...
//           (version=TLSv1.3 cipher=TLS_AES_256_GCM_SHA384 bits=256 verify=NO)
//           for <a@b.example>; Tue, 04 Mar 2025 10:11:12 +0000
//
// The TLS comment is sendmail's format, filled from the live socket (tls-session.ts),
// so the header is evidence of how the message reached us. "for" names the
// recipient only when there is exactly one: with several, it would disclose the
// whole envelope to every recipient. Only the header block is read or changed;
// the body is never parsed.
import { decodeEncodedWords } from '../mime/encoded-words.ts';

export interface InboundHop {
  /** What the client said in EHLO/HELO. */
  readonly helo: string;
  readonly ehlo: boolean;
  /** Reverse DNS name of the client, null when unknown. */
  readonly clientHostname: string | null;
  readonly clientIp: string;
  /** Our name (config.server.hostname). */
  readonly hostname: string;
  readonly queueId: string;
  readonly authenticated: boolean;
  readonly tls: { readonly version: string; readonly cipher: string; readonly bits: number | null } | null;
  readonly recipients: readonly string[];
  readonly date: Date;
  /**
   * The "with" protocol when the message did not come by SMTP: the REST API says
   * "HTTPS" (no registered mail transmission type names HTTP; webmail and mail APIs
   * write HTTP or HTTPS, and ESMTPSA would claim an SMTP session there was not).
   */
  readonly protocol?: string;
  /**
   * A local submission (`sealrelay sendmail`): no client host, so the field names the
   * OS user instead of "from HELO (address)", as Postfix's "from userid" and Exim's "with local".
   */
  readonly local?: { readonly user: string; readonly uid: number };
}

/** Header lines are folded to stay within this many characters where possible (RFC 5322 §2.1.1). */
const FOLD_AT_CHARS = 78;

/** RFC 3848 with-protocol: ESMTP plus S for TLS and A for AUTH; plain HELO sessions are "SMTP". */
export function withProtocol(hop: Pick<InboundHop, 'ehlo' | 'tls' | 'authenticated' | 'protocol'>): string {
  if (hop.protocol) return hop.protocol;
  if (!hop.ehlo) return 'SMTP';
  return `ESMTP${hop.tls ? 'S' : ''}${hop.authenticated ? 'A' : ''}`;
}

/** The Received header field, folded, ending with CRLF. */
export function receivedHeader(hop: InboundHop): string {
  const literal = addressLiteral(hop.clientIp);
  // RFC 5321 §4.4 TCP-info = address-literal / ( Domain FWS address-literal )
  const tcpInfo = hop.clientHostname ? `${hop.clientHostname} ${literal}` : literal;
  // Each entry stays on one line when folded.
  const tokens = hop.local
    ? ['Received:', `by ${hop.hostname}`, '(SealRelay)', `with ${withProtocol(hop)}`, `id ${hop.queueId}`, `(uid ${hop.local.uid} ${hop.local.user})`]
    : [`Received: from ${hop.helo}`, `(${tcpInfo})`, `by ${hop.hostname}`, '(SealRelay)', `with ${withProtocol(hop)}`, `id ${hop.queueId}`];
  if (hop.tls) {
    // verify=NO: ingress does not ask clients for certificates.
    tokens.push(`(version=${hop.tls.version}`, `cipher=${hop.tls.cipher}`);
    if (hop.tls.bits !== null) tokens.push(`bits=${hop.tls.bits}`);
    tokens.push('verify=NO)');
  }
  if (hop.recipients.length === 1) tokens.push(`for <${hop.recipients[0]}>`);
  tokens[tokens.length - 1] += ';';
  tokens.push(rfc5322Date(hop.date));
  return fold(tokens);
}

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const two = (n: number) => (n < 10 ? `0${n}` : `${n}`);

/** RFC 5322 §3.3 date-time in UTC, e.g. "Tue, 04 Mar 2025 10:11:12 +0000". */
export function rfc5322Date(date: Date): string {
  return (
    `${DAYS[date.getUTCDay()]}, ${two(date.getUTCDate())} ${MONTHS[date.getUTCMonth()]} ${date.getUTCFullYear()} ` +
    `${two(date.getUTCHours())}:${two(date.getUTCMinutes())}:${two(date.getUTCSeconds())} +0000`
  );
}

/** RFC 5321 §4.1.3 address literal: [192.0.2.1] or [IPv6:2001:db8::1]. */
export function addressLiteral(ip: string): string {
  return ip.includes(':') ? `[IPv6:${ip}]` : `[${ip}]`;
}

/**
 * Joins tokens with spaces, folding between tokens so that each line stays within
 * FOLD_AT_CHARS characters where possible; a token is never split. Continuation lines
 * start with a tab in place of the space (both are FWS, RFC 5322 §3.2.2).
 */
export function fold(tokens: readonly string[]): string {
  const lines: string[] = [];
  let current = '';
  for (const token of tokens) {
    if (current === '') current = token;
    else if (current.length + 1 + token.length > FOLD_AT_CHARS) {
      lines.push(current);
      current = `\t${token}`;
    } else current += ` ${token}`;
  }
  lines.push(current);
  return lines.join('\r\n') + '\r\n';
}

export interface HeaderFacts {
  /** With its angle brackets, as in the header; null when absent or unparsable. */
  readonly messageId: string | null;
  /** Unfolded and RFC 2047-decoded, for reports; null when absent. */
  readonly subject: string | null;
  /** The campaign header's value (reports.campaign_header), decoded and trimmed; null when absent, empty or not asked for. */
  readonly campaign: string | null;
  /** The custom header's value (reports.custom_header), likewise. */
  readonly custom: string | null;
}

/** The header fields reports read besides Subject: their names as configured (any case); null: not read. */
export interface ReportHeaders {
  readonly campaign: string | null;
  readonly custom: string | null;
}

/** Control characters (a decoded value may carry them): a label shows them as spaces. */
// eslint-disable-next-line no-control-regex
const CONTROL = /[\x00-\x1f\x7f]/g;
/** A report value is a label, not content: this many characters at most. */
const MAX_REPORT_VALUE_CHARS = 200;

/** Message-ID, Subject and the report headers from a header block (the first occurrence of each). */
export function headerFacts(headerBlock: Buffer, report: ReportHeaders = { campaign: null, custom: null }): HeaderFacts {
  let messageId: string | null = null;
  let subject: string | null = null;
  let campaign: string | null = null;
  let custom: string | null = null;
  let sawMessageId = false;
  const campaignName = report.campaign?.toLowerCase();
  const customName = report.custom?.toLowerCase();
  const label = (value: string) => decodeEncodedWords(value).replace(CONTROL, ' ').trim().slice(0, MAX_REPORT_VALUE_CHARS) || null;
  const unfolded = headerBlock.toString('utf8').replace(/\r\n(?=[ \t])/g, '');
  for (const line of unfolded.split('\r\n')) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    if (name === 'message-id' && !sawMessageId) {
      sawMessageId = true;
      messageId = /<[^<>\s]+>/.exec(value)?.[0] ?? null;
    } else if (name === 'subject' && subject === null) {
      subject = decodeEncodedWords(value);
    } else if (name === campaignName && campaign === null) {
      campaign = label(value);
    } else if (name === customName && custom === null) {
      custom = label(value);
    }
  }
  return { messageId, subject, campaign, custom };
}

/**
 * The header section without every field named `name` (any case), continuation lines
 * included; the same buffer when there is none. The campaign header is ours to read,
 * not the recipient's to see: it goes before the message is queued.
 */
export function withoutField(header: Buffer, name: string): Buffer {
  const lower = name.toLowerCase();
  const kept: Buffer[] = [];
  let start = 0;
  let dropping = false;
  let dropped = false;
  while (start < header.length) {
    const lf = header.indexOf(0x0a, start);
    const next = lf < 0 ? header.length : lf + 1;
    const first = header[start];
    if (first !== 0x20 && first !== 0x09) {
      const colon = header.indexOf(0x3a, start);
      dropping = colon > start && colon < next && header.toString('latin1', start, colon).trim().toLowerCase() === lower;
    }
    if (dropping) dropped = true;
    else kept.push(header.subarray(start, next));
    start = next;
  }
  return dropped ? Buffer.concat(kept) : header;
}

/**
 * The message as it will be queued: our Received on top, a Message-ID at the end of
 * the header section when the client sent none (RFC 5322 §3.6.4 says it SHOULD be
 * present; reports and bounce correlation need it), and the empty line that ends
 * the header section where the client left it out: the header section ends at the
 * first line that is not a header field (Postfix's cleanup does the same), so text
 * sent without headers stays body and our Message-ID lands among the headers.
 */
export function stampMessage(
  message: Buffer,
  hop: InboundHop,
  opts: {
    headroom?: number;
    /** headerSection(message), when the caller has it already. */
    section?: HeaderSection;
    /** The report headers to read; the campaign header is also taken out of the message. */
    report?: ReportHeaders;
  } = {},
): { body: Buffer; messageId: string; subject: string | null; campaign: string | null; custom: string | null } {
  const { end, separated } = opts.section ?? headerSection(message);
  const header = message.subarray(0, end);
  const facts = headerFacts(header, opts.report);
  const kept = opts.report?.campaign ? withoutField(header, opts.report.campaign) : header;
  const received = Buffer.from(receivedHeader(hop), 'utf8');
  // A Message-ID header that did not parse is left alone; we add one that does.
  const messageId = facts.messageId ?? `<${hop.queueId}.${hop.date.getTime()}@${hop.hostname}>`;
  const field = facts.messageId === null ? Buffer.from(`Message-ID: ${messageId}\r\n`, 'utf8') : EMPTY;
  const separator = separated || end === message.length ? EMPTY : CRLF;
  const stamped = { messageId, subject: facts.subject, campaign: facts.campaign, custom: facts.custom };
  if (field === EMPTY && separator === EMPTY && kept === header) return { body: prepend(received, message, opts.headroom ?? 0), ...stamped };
  return { body: Buffer.concat([received, kept, field, separator, message.subarray(end)]), ...stamped };
}

/**
 * `prefix` then `message`. When the caller left `headroom` free bytes in front of the
 * message in its buffer (DataReader does), the prefix is written there: a 25 MB
 * message is not copied again to gain a few hundred bytes of header.
 */
function prepend(prefix: Buffer, message: Buffer, headroom: number): Buffer {
  if (prefix.length > headroom || message.byteOffset < prefix.length) return Buffer.concat([prefix, message]);
  const body = Buffer.from(message.buffer, message.byteOffset - prefix.length, prefix.length + message.length);
  prefix.copy(body, 0);
  return body;
}

const EMPTY = Buffer.alloc(0);
const CRLF = Buffer.from('\r\n');
/** RFC 5322 §2.2: a field name is printable US-ASCII except the colon, then optional WSP and the colon. */
const FIELD = /^[\x21-\x39\x3b-\x7e]+[ \t]*:/;

export interface HeaderSection {
  /** Just past the last header field line. */
  readonly end: number;
  /** Whether an empty line follows there (the body is then the rest after it). */
  readonly separated: boolean;
}

/** Where the header section ends: at the empty line, or at the first line that is not a header field. */
export function headerSection(message: Buffer): HeaderSection {
  let start = 0;
  let inField = false;
  while (start < message.length) {
    const lf = message.indexOf(0x0a, start);
    const next = lf < 0 ? message.length : lf + 1;
    if (next - start === 2 && message[start] === 0x0d) return { end: start, separated: true };
    const first = message[start];
    const continuation = inField && (first === 0x20 || first === 0x09);
    // Only the first bytes matter for a field name; a long line is not decoded whole.
    if (!continuation && !FIELD.test(message.toString('latin1', start, Math.min(next, start + 1000)))) return { end: start, separated: false };
    inField = true;
    start = next;
  }
  return { end: message.length, separated: false };
}
