// Which parts of a message the DLP scanner reads, and under which name. Policy:
// inline text/plain is "text", inline text/html is "html"; every other part a
// person could read as text — attached, or inside a forwarded message/rfc822 —
// is an "attachment": text/*,
// JSON, XML, CSV, YAML, HL7 v2, and octet-streams whose file name says text.
// Binary parts (images, PDF, archives, office files) are skipped: their bytes
// are not text and would only produce false positives.
import type { PartHeaders } from './mime-headers.ts';

export type DlpPart = 'subject' | 'text' | 'html' | 'attachment';

export interface ScannedPart {
  readonly part: DlpPart;
  /** The part is HTML and is reduced to its text before scanning. */
  readonly html: boolean;
}

const TEXT_LIKE_TYPES = new Set([
  'application/json',
  'application/xml',
  'application/csv',
  'application/x-csv',
  'application/yaml',
  'application/x-yaml',
  'application/x-ndjson',
  'application/hl7-v2',
  'application/edi-x12',
  'application/rtf',
  'application/xhtml+xml',
]);
const TEXT_FILE_NAME = /\.(?:txt|text|csv|tsv|json|ndjson|xml|log|md|yaml|yml|hl7|edi|x12|rtf|html?|ics|vcf|eml)$/i;

function textLike(type: string, filename: string | null): boolean {
  if (type.startsWith('text/') || TEXT_LIKE_TYPES.has(type) || /\+(?:json|xml)$/.test(type)) return true;
  // A generic type says nothing; the file name may (many mailers send CSV as octet-stream).
  return (type === 'application/octet-stream' || type === 'application/x-download') && filename !== null && TEXT_FILE_NAME.test(filename);
}

/** How to scan a leaf part, or null to skip it; `embedded`: it is inside a message/rfc822. */
export function classifyPart(headers: PartHeaders, embedded = false): ScannedPart | null {
  const type = headers.contentType.startsWith('multipart/') ? 'text/plain' : headers.contentType; // multipart without a boundary
  const html = type === 'text/html' || type === 'application/xhtml+xml' || (headers.filename !== null && /\.html?$/i.test(headers.filename));
  if (!textLike(type, headers.filename)) return null;
  const attached = embedded || headers.disposition === 'attachment' || headers.filename !== null;
  if (!attached && type === 'text/plain') return { part: 'text', html: false };
  if (!attached && type === 'text/html') return { part: 'html', html: true };
  return { part: 'attachment', html };
}
