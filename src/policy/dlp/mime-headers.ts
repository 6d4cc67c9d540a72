// What the DLP scanner needs from a MIME header block: the content type and its
// parameters (RFC 2045 §5.1, with RFC 2231 continuations and charsets), the
// transfer encoding, the disposition and file name, and the subject with its
// encoded-words decoded (RFC 2047). Lenient: a malformed field yields defaults.
// Parameters are parsed by libmime, as mailparser and mailsplit do.
import { libmime } from '../../mime/lazy-libs.ts';
import { decodeEncodedWords } from '../../mime/encoded-words.ts';
import { parseHeaders } from '../../mime/header-block.ts';

export interface PartHeaders {
  /** Lower-case type/subtype; "text/plain" when absent or unreadable (RFC 2045 §5.2). */
  readonly contentType: string;
  /** Content-Type parameters by lower-case name (boundary, charset, name, …). */
  readonly params: ReadonlyMap<string, string>;
  /** Lower-case Content-Transfer-Encoding; "7bit" when absent. */
  readonly encoding: string;
  /** "inline", "attachment" or null when absent. */
  readonly disposition: string | null;
  /** From Content-Disposition filename or Content-Type name. */
  readonly filename: string | null;
  /** The decoded Subject; null when absent. */
  readonly subject: string | null;
}

export function readPartHeaders(block: string): PartHeaders {
  const fields = parseHeaders(block);
  const first = (name: string): string | null => fields.get(name)?.[0] ?? null;
  const type = splitParams(first('content-type') ?? '');
  const disposition = splitParams(first('content-disposition') ?? '');
  const contentType = /^[a-z0-9!#$&^_.+-]+\/[a-z0-9!#$&^_.+-]+$/.test(type.value) ? type.value : 'text/plain';
  const subject = first('subject');
  // Many mailers put an encoded-word in a quoted file name instead of RFC 2231; mail clients show it decoded.
  const filename = disposition.params.get('filename') ?? type.params.get('name') ?? null;
  return {
    contentType,
    params: type.params,
    encoding: (first('content-transfer-encoding') ?? '7bit').trim().toLowerCase(),
    disposition: disposition.value || null,
    filename: filename === null ? null : decodeEncodedWords(filename),
    subject: subject === null ? null : decodeEncodedWords(subject),
  };
}

/**
 * "value; a=1; b*0*=utf-8''x; b*1=y" → lower-case value and parameters by lower-case name, read by
 * libmime (RFC 2231 continuations and charsets joined; a repeated parameter: the first one counts).
 */
export function splitParams(field: string): { value: string; params: Map<string, string> } {
  const { value, params } = libmime().parseHeaderValue(field);
  return { value: value.toLowerCase(), params: new Map(Object.entries(params)) };
}
