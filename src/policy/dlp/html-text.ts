// HTML → the text a reader sees, streamed chunk by chunk for the DLP scanner.
// Tags and comments are dropped; the content of <script> and <style> too (it is
// never shown, and CSS is full of number-like tokens). Inline tags (<b>, <span>,
// …) vanish without a trace so "078-<b>05</b>-1120" still reads as one number;
// other tags become a space so table cells do not run together. Character
// references are decoded (&#48;, &#x2D;, &amp;, &nbsp;, …), also when a chunk
// edge splits one. Not a full HTML parser: for DLP, not for display.
// Not html-to-text (a whole-part DOM: about 10× slower and tens of MB more on
// the benchmark's 3.4 MB HTML part) nor htmlparser2's streaming Parser (its
// open-element stack grows by Array.unshift, quadratic on deeply nested tags).

const INLINE_TAGS = new Set([
  'a', 'abbr', 'b', 'bdi', 'bdo', 'big', 'cite', 'code', 'data', 'del', 'dfn', 'em', 'font', 'i', 'ins', 'kbd',
  'mark', 'q', 's', 'samp', 'small', 'span', 'strike', 'strong', 'sub', 'sup', 'time', 'tt', 'u', 'var', 'wbr',
]);
const RAW_TEXT_TAGS = new Set(['script', 'style']);

const NAMED: Record<string, string> = {
  amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: ' ', ensp: ' ', emsp: ' ', thinsp: ' ', shy: '',
  hyphen: '-', dash: '-', ndash: '-', mdash: '-', minus: '-', colon: ':', period: '.', comma: ',', num: '#',
  sol: '/', lpar: '(', rpar: ')', plus: '+', equals: '=', zwj: '', zwnj: '',
};
const ENTITY = /&(?:#(\d{1,7})|#[xX]([0-9a-fA-F]{1,6})|([A-Za-z][A-Za-z0-9]{1,31}));?/g;
/** A character reference that may continue in the next chunk. */
const PARTIAL_ENTITY = /&(?:#[xX]?[0-9a-fA-F]{0,6}|[A-Za-z][A-Za-z0-9]{0,31})?$/;

// &nbsp; first, by plain string replacement: HTML from word processors has one between most words.
function decodeEntities(s: string): string {
  if (!s.includes('&')) return s;
  return s.replaceAll('&nbsp;', ' ').replace(ENTITY, (whole, dec?: string, hex?: string, name?: string) => {
    if (name !== undefined) return whole.endsWith(';') ? (NAMED[name.toLowerCase()] ?? whole) : whole;
    const cp = dec !== undefined ? Number(dec) : parseInt(hex!, 16);
    return cp > 0 && cp <= 0x10ffff && (cp < 0xd800 || cp > 0xdfff) ? String.fromCodePoint(cp) : '\uFFFD';
  });
}

type Mode = 'text' | 'tag' | 'comment' | 'raw';

export class HtmlText {
  private mode: Mode = 'text';
  private pending = ''; // text that may be the start of something the next chunk completes
  private tag = ''; // the start of the current tag (its name), at most 40 characters
  private quote = ''; // the quote character we are inside in a tag, if any
  private prev = ''; // the previous character of the tag
  private rawEnd: RegExp | null = null; // the end tag that closes <script>/<style>

  write(chunk: string): string {
    const s = this.pending + chunk;
    this.pending = '';
    let out = '';
    let i = 0;
    while (i < s.length) {
      if (this.mode === 'text') {
        let lt = s.indexOf('<', i);
        // "<" starts markup only before a letter, "/", "!" or "?"; else it is text ("a < b").
        while (lt !== -1 && lt + 1 < s.length && !/[A-Za-z/!?]/.test(s[lt + 1]!)) lt = s.indexOf('<', lt + 1);
        let end = lt === -1 ? s.length : lt;
        if (lt === s.length - 1) {
          this.pending = '<';
          out += decodeEntities(s.slice(i, end));
          break;
        }
        if (lt === -1) {
          const partial = PARTIAL_ENTITY.exec(s.slice(Math.max(i, s.length - 40)));
          if (partial) {
            end = s.length - partial[0].length;
            this.pending = partial[0];
          }
        }
        out += decodeEntities(s.slice(i, end));
        if (lt === -1) break;
        this.mode = 'tag';
        this.tag = '';
        this.quote = '';
        this.prev = '';
        i = lt + 1;
      } else if (this.mode === 'tag') {
        i = this.readTag(s, i, (sep) => (out += sep));
      } else {
        const close = this.mode === 'comment' ? s.indexOf('-->', i) : this.searchRawEnd(s, i);
        if (close === -1) {
          this.pending = s.slice(Math.max(i, s.length - 9)); // "-->" or "</script" may straddle the edge
          break;
        }
        if (this.mode === 'comment') {
          this.mode = 'text';
          i = close + 3;
        } else {
          this.mode = 'tag';
          this.tag = '';
          this.prev = '';
          i = close + 1;
        }
      }
    }
    return out;
  }

  end(): string {
    const rest = this.mode === 'text' ? decodeEntities(this.pending) : '';
    this.pending = '';
    return rest;
  }

  /** Reads tag characters from s[i]; at the closing ">" emits the separator and changes mode. */
  private readTag(s: string, i: number, emit: (sep: string) => void): number {
    for (; i < s.length; i++) {
      const c = s[i]!;
      if (this.quote) {
        if (c === this.quote) this.quote = '';
        continue;
      }
      const prev = this.prev;
      this.prev = c;
      if (this.tag.length < 40) {
        this.tag += c;
        if (this.tag === '!--') {
          this.mode = 'comment';
          return i + 1;
        }
      }
      if ((c === '"' || c === "'") && (prev === '=' || /\s/.test(prev))) this.quote = c;
      else if (c === '>') {
        const name = /^\/?([A-Za-z][A-Za-z0-9-]*)/.exec(this.tag)?.[1]?.toLowerCase() ?? '';
        emit(INLINE_TAGS.has(name) ? '' : ' ');
        if (RAW_TEXT_TAGS.has(name) && !this.tag.startsWith('/') && !this.tag.endsWith('/>')) {
          this.mode = 'raw';
          this.rawEnd = new RegExp(`</${name}[\\s/>]`, 'ig');
        } else this.mode = 'text';
        return i + 1;
      }
    }
    return i;
  }

  private searchRawEnd(s: string, from: number): number {
    const re = this.rawEnd!;
    re.lastIndex = from;
    return re.exec(s)?.index ?? -1;
  }
}
