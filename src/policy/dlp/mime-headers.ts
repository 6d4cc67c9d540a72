// What the DLP scanner needs from a MIME header block: the content type and its
// parameters (RFC 2045 §5.1, with RFC 2231 continuations and charsets), the
// transfer encoding, the disposition and file name, and the subject with its
// encoded-words decoded (RFC 2047). Lenient: a malformed field yields defaults.
import { decodeEncodedWords } from '../../mime/encoded-words.ts';
import { parseHeaders } from '../../mime/header-block.ts';
import { charsetDecoder } from './decode.ts';

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
  return {
    contentType,
    params: type.params,
    encoding: (first('content-transfer-encoding') ?? '7bit').trim().toLowerCase(),
    disposition: disposition.value || null,
    filename: disposition.params.get('filename') ?? type.params.get('name') ?? null,
    subject: subject === null ? null : decodeEncodedWords(subject),
  };
}

/** "value; a=1; b*0=x; b*1=y" → lower-case value and parameters, RFC 2231 continuations joined. */
export function splitParams(field: string): { value: string; params: Map<string, string> } {
  const parts: string[] = [];
  const re = /((?:[^;"]|"(?:[^"\\]|\\.)*")+)/g;
  for (let m = re.exec(field); m !== null; m = re.exec(field)) parts.push(m[1]!.trim());
  const pieces = new Map<string, { index: number; extended: boolean; text: string }[]>();
  for (const part of parts.slice(1)) {
    const eq = part.indexOf('=');
    if (eq <= 0) continue;
    const key = part.slice(0, eq).trim().toLowerCase();
    let text = part.slice(eq + 1).trim();
    if (text.startsWith('"')) text = text.slice(1, -1).replace(/\\(.)/g, '$1');
    const k = /^([^*]+)(?:\*(\d+))?(\*)?$/.exec(key);
    if (!k) continue;
    const list = pieces.get(k[1]!) ?? [];
    list.push({ index: Number(k[2] ?? 0), extended: k[3] === '*', text });
    pieces.set(k[1]!, list);
  }
  const params = new Map<string, string>();
  for (const [name, list] of pieces) {
    list.sort((a, b) => a.index - b.index);
    const charsetPrefix = list[0]!.extended ? /^([^']*)'[^']*'/.exec(list[0]!.text) : null;
    if (charsetPrefix) list[0] = { ...list[0]!, text: list[0]!.text.slice(charsetPrefix[0].length) };
    const bytes = Buffer.concat(list.map((p) => (p.extended ? percentDecode(p.text) : Buffer.from(p.text, 'utf8'))));
    params.set(name, charsetDecoder(charsetPrefix?.[1]).decode(bytes));
  }
  return { value: (parts[0] ?? '').toLowerCase(), params };
}

function percentDecode(s: string): Buffer {
  return Buffer.from(s.replace(/%([0-9A-Fa-f]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16))), 'latin1');
}

