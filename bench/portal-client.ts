// portal-client: one bench recipient's browser, as far as the portal's pages need
// one. HTTPS with the bench CA verified, connections kept alive (one at a time, as a
// tab loads one document after another), a cookie jar, forms followed as a browser
// posts them (the page's action and its _csrf field, with Origin and Sec-Fetch-Site
// as browsers send them on our own forms), and a client address of its own: each
// recipient connects from its own loopback address (127.0.1.x), as people reach the
// portal from their own networks, so the per-IP limits see one person each.
// Only HTML documents and downloads are fetched: stylesheet and script are cached by
// a browser after the first page.
import { Agent, request } from 'node:https';
import { performance } from 'node:perf_hooks';

export interface Fetched {
  readonly status: number;
  readonly location: string | null;
  readonly contentType: string | null;
  /** Empty when the body was not kept (a download counted, not read). */
  readonly body: Buffer;
  readonly bytes: number;
  /** From the request's start to the last byte of the body, ms. */
  readonly ms: number;
}

/** A form on a page: where it posts and its CSRF token. */
export interface PageForm {
  readonly action: string;
  readonly csrf: string;
}

/** The loopback address recipient i connects from: 127.0.1.1, 127.0.1.2, … (250 per /24, then the next). */
export function clientAddress(i: number): string {
  return `127.0.${1 + Math.floor(i / 250)}.${1 + (i % 250)}`;
}

export class BenchBrowser {
  private readonly agent: Agent;
  private readonly cookies = new Map<string, string>();
  private readonly origin: URL;

  constructor(
    origin: string,
    ca: string,
    readonly address: string,
    private readonly userAgent: string,
  ) {
    this.origin = new URL(origin);
    this.agent = new Agent({ keepAlive: true, maxSockets: 1, localAddress: address, ca });
  }

  get(path: string, opts: { keepBody?: boolean } = {}): Promise<Fetched> {
    return this.fetch('GET', path, null, opts.keepBody ?? true);
  }

  /** Posts a form (application/x-www-form-urlencoded) as a browser does from one of our pages. */
  post(path: string, fields: Record<string, string>): Promise<Fetched> {
    return this.fetch('POST', path, new URLSearchParams(fields).toString(), true);
  }

  close(): void {
    this.agent.destroy();
  }

  private fetch(method: 'GET' | 'POST', path: string, form: string | null, keepBody: boolean): Promise<Fetched> {
    const url = new URL(path, this.origin);
    if (url.origin !== this.origin.origin) return Promise.reject(new Error(`refusing to leave ${this.origin.origin} for ${url.origin}`));
    const headers: Record<string, string> = { 'user-agent': this.userAgent, accept: 'text/html,*/*' };
    const cookie = [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
    if (cookie) headers.cookie = cookie;
    if (form !== null) {
      headers['content-type'] = 'application/x-www-form-urlencoded';
      headers['content-length'] = String(Buffer.byteLength(form));
      headers.origin = this.origin.origin;
      headers['sec-fetch-site'] = 'same-origin';
    }
    const started = performance.now();
    return new Promise((resolve, reject) => {
      const req = request(url, { method, agent: this.agent, headers }, (res) => {
        const chunks: Buffer[] = [];
        let bytes = 0;
        res.on('data', (chunk: Buffer) => {
          bytes += chunk.length;
          if (keepBody) chunks.push(chunk);
        });
        res.on('error', reject);
        res.on('end', () => {
          const ms = performance.now() - started;
          this.takeCookies(res.headers['set-cookie']);
          resolve({
            status: res.statusCode ?? 0,
            location: typeof res.headers.location === 'string' ? res.headers.location : null,
            contentType: res.headers['content-type'] ?? null,
            body: Buffer.concat(chunks),
            bytes,
            ms,
          });
        });
      });
      req.on('error', reject);
      req.setTimeout(60_000, () => req.destroy(new Error(`${method} timed out after 60 s`)));
      req.end(form ?? undefined);
    });
  }

  private takeCookies(setCookie: string[] | undefined): void {
    for (const line of setCookie ?? []) {
      const pair = line.split(';', 1)[0]!;
      const eq = pair.indexOf('=');
      if (eq <= 0) continue;
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      const expired = /;\s*max-age=0\b/i.test(line) || /;\s*expires=Thu, 01 Jan 1970/i.test(line);
      if (!value || expired) this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
  }
}

/** The form with `id` on a page: its action and _csrf value (entities in attributes decoded). */
export function findForm(page: string, id: string): PageForm {
  const open = new RegExp(`<form\\b[^>]*\\bid="${id}"[^>]*>`).exec(page);
  if (!open) throw new Error(`no form #${id} on the page`);
  const action = /\baction="([^"]*)"/.exec(open[0])?.[1];
  const rest = page.slice(open.index, page.indexOf('</form>', open.index));
  const csrf = /<input type="hidden" name="_csrf" value="([^"]*)"/.exec(rest)?.[1];
  if (action === undefined || csrf === undefined) throw new Error(`form #${id} has no action or no _csrf field`);
  return { action: decodeAttribute(action), csrf: decodeAttribute(csrf) };
}

/** The first link whose href matches `pattern`. */
export function findLink(page: string, pattern: RegExp): string {
  for (const m of page.matchAll(/<a\b[^>]*\bhref="([^"]*)"/g)) {
    const href = decodeAttribute(m[1]!);
    if (pattern.test(href)) return href;
  }
  throw new Error(`no link matching ${pattern} on the page`);
}

function decodeAttribute(text: string): string {
  return text.replace(/&(amp|lt|gt|quot|#39|#x27);/g, (_, e: string) => ({ amp: '&', lt: '<', gt: '>', quot: '"', '#39': "'", '#x27': "'" })[e]!);
}
