// Static assets, served by the relay itself (no CDN, no remote request from any
// page). The set is fixed and held in memory: a request names an asset by its
// hashed file name, so there is no file-system path to traverse, and the
// content hash in the name lets browsers cache it for a year (a changed file
// gets a new name).
import { createHash } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { BASE_CSS } from './assets/base-css.ts';
import { LINK_KEY_JS } from './portal/assets/link-key-js.ts';
import { PORTAL_CSS } from './portal/assets/portal-css.ts';

interface Asset {
  readonly url: string;
  readonly body: Buffer;
  readonly type: string;
  readonly etag: string;
}

/** A small shield mark, so that browsers do not ask for /favicon.ico (a 404 in every page's log). */
const ICON_SVG = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><path fill="#0b3d6b" d="M16 2 4 6v9c0 7.5 5.1 13.3 12 15 6.9-1.7 12-7.5 12-15V6z"/><path fill="#ffffff" d="M11 15h10v8H11zm2-3a3 3 0 0 1 6 0v3h-2v-3a1 1 0 0 0-2 0v3h-2z"/></svg>`;

const SOURCES: Record<string, { text: string; type: string }> = {
  'base.css': { text: BASE_CSS, type: 'text/css; charset=utf-8' },
  'icon.svg': { text: ICON_SVG, type: 'image/svg+xml' },
  'portal.css': { text: PORTAL_CSS, type: 'text/css; charset=utf-8' },
  'portal-link.js': { text: LINK_KEY_JS, type: 'text/javascript; charset=utf-8' },
};

const ASSETS = new Map<string, Asset>();
const URLS = new Map<string, string>();
for (const [name, { text, type }] of Object.entries(SOURCES)) {
  const body = Buffer.from(text, 'utf8');
  const hash = createHash('sha256').update(body).digest('hex').slice(0, 12);
  const dot = name.lastIndexOf('.');
  const file = `${name.slice(0, dot)}.${hash}${name.slice(dot)}`;
  const url = `/assets/${file}`;
  ASSETS.set(file, { url, body, type, etag: `"${hash}"` });
  URLS.set(name, url);
}

/** The URL of an asset by its plain name ("base.css"); throws for an unknown one (a template bug). */
export function assetUrl(name: string): string {
  const url = URLS.get(name);
  if (!url) throw new Error(`no asset named ${name}`);
  return url;
}

/** GET /assets/<name>.<hash>.<ext>: immutable, cached for a year; anything else is a 404. */
export function registerAssets(app: FastifyInstance): void {
  app.get<{ Params: { file: string } }>('/assets/:file', (request, reply) => {
    const asset = ASSETS.get(request.params.file);
    if (!asset) return reply.callNotFound();
    reply.header('cache-control', 'public, max-age=31536000, immutable').header('etag', asset.etag).type(asset.type);
    if (request.headers['if-none-match'] === asset.etag) return reply.code(304).send();
    return reply.send(asset.body);
  });
}
