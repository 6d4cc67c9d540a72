// Signed tracking links: the open pixel (/t/o/), the click redirector (/t/c/) and the
// unsubscribe link (/u/). A token names one recipient of one message by queue id and
// seq — never by address — and what the link is for; a click token also carries its
// target URL (base64url: not readable at a glance, but not secret either — the mail
// that holds the link holds the URL too). Carrying the URL costs link length and
// saves keeping a table of every message's links for as long as mail is clicked.
//
//   token = kind "." queueId "." seq ["." base64url(url)] "." mac
//   mac   = first 128 bits of HMAC-SHA256(tracking key, "sealrelay-tracking-v1" NUL payload)
//
// The kind is inside the MAC, so a pixel token is no click or unsubscribe token. The
// redirector only ever sends a browser to the URL a valid token carries: no open
// redirect. Verification is constant-time; anything malformed is simply invalid.
import { createHmac, timingSafeEqual } from 'node:crypto';

export type LinkKind = 'open' | 'click' | 'unsubscribe';
const KIND_CODE: Readonly<Record<LinkKind, string>> = { open: 'o', click: 'c', unsubscribe: 'u' };
const CODE_KIND: Readonly<Record<string, LinkKind>> = { o: 'open', c: 'click', u: 'unsubscribe' };

/** 128 bits. */
const MAC_BYTES = 16;
const MAC_TEXT = /^[A-Za-z0-9_-]{22}$/;
const QUEUE_ID = /^[0-9A-Za-z]{1,64}$/;
const SEQ = /^(0|[1-9][0-9]{0,5})$/;
const BASE64URL = /^[A-Za-z0-9_-]+$/;
/** Longest target URL a click link carries; longer links are left as they are. */
export const MAX_TARGET_URL = 2048;
/** Longest token accepted (a click token of the longest URL, with room to spare). */
export const MAX_TOKEN = 3072;

export interface LinkTarget {
  readonly kind: LinkKind;
  readonly queueId: string;
  readonly seq: number;
  /** For a click: where it goes. */
  readonly url?: string;
}

/** Paths of each kind on the public listener. */
export const LINK_PATHS: Readonly<Record<LinkKind, string>> = { open: '/t/o/', click: '/t/c/', unsubscribe: '/u/' };

export class LinkSigner {
  readonly #key: Buffer;

  constructor(key: Buffer) {
    if (key.length < 32) throw new RangeError('tracking: the link key needs at least 256 bits');
    this.#key = Buffer.from(key);
  }

  token(t: LinkTarget): string {
    if (!QUEUE_ID.test(t.queueId) || !SEQ.test(String(t.seq))) throw new TypeError('tracking: a link names a queue id and a seq');
    const parts = [KIND_CODE[t.kind], t.queueId, String(t.seq)];
    if (t.kind === 'click') {
      if (!t.url || !isTrackableUrl(t.url)) throw new TypeError('tracking: a click link needs an http(s) URL');
      parts.push(Buffer.from(t.url, 'utf8').toString('base64url'));
    }
    const payload = parts.join('.');
    return `${payload}.${this.#mac(payload).toString('base64url')}`;
  }

  /** The target of a valid token; null for anything else (tampered, truncated, another key, malformed). */
  verify(token: string): LinkTarget | null {
    if (typeof token !== 'string' || token.length > MAX_TOKEN) return null;
    const parts = token.split('.');
    const mac = parts.pop();
    if (!mac || !MAC_TEXT.test(mac) || parts.length < 3 || parts.length > 4) return null;
    const expected = this.#mac(parts.join('.'));
    const given = Buffer.from(mac, 'base64url');
    // The 22nd character carries 2 bits of the MAC and 4 spare ones: only its canonical spelling is the token.
    if (given.length !== MAC_BYTES || given.toString('base64url') !== mac || !timingSafeEqual(given, expected)) return null;
    const [code, queueId, seq, url] = parts as [string, string, string, string | undefined];
    const kind = CODE_KIND[code];
    if (!kind || !QUEUE_ID.test(queueId) || !SEQ.test(seq) || (kind === 'click') !== (url !== undefined)) return null;
    if (url === undefined) return { kind, queueId, seq: Number(seq) };
    if (!BASE64URL.test(url)) return null;
    const target = Buffer.from(url, 'base64url').toString('utf8');
    return isTrackableUrl(target) ? { kind, queueId, seq: Number(seq), url: target } : null;
  }

  #mac(payload: string): Buffer {
    return createHmac('sha256', this.#key).update(`sealrelay-tracking-v1\0${payload}`).digest().subarray(0, MAC_BYTES);
  }
}

/** The absolute link of a target under `base` (the public URL). */
export function linkUrl(base: string, signer: LinkSigner, t: LinkTarget): string {
  return `${base.replace(/\/+$/, '')}${LINK_PATHS[t.kind]}${signer.token(t)}`;
}

/** An absolute http(s) URL of printable ASCII, short enough to carry: what the click redirector may send a browser to. */
export function isTrackableUrl(url: string): boolean {
  if (url.length > MAX_TARGET_URL || !/^[\x21-\x7e]+$/.test(url)) return false;
  try {
    const u = new URL(url);
    return (u.protocol === 'http:' || u.protocol === 'https:') && u.hostname !== '';
  } catch {
    return false;
  }
}
