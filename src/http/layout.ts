// The base layout every page shares: one column, the service's name, a skip link,
// the local stylesheet, the language declared. Pages hand it their <main> content
// built with `html` (escaped by default) and it adds nothing a page could
// inject into: the title is escaped like any value.
import type { FastifyReply, FastifyRequest } from 'fastify';
import { assetUrl } from './assets.ts';
import { html, type SafeHtml } from '../html.ts';

declare module 'fastify' {
  interface FastifyInstance {
    /** What the pages of this listener call the service ("Secure messages from Clinic X"). */
    siteName: string;
  }
}

export interface PageContent {
  /** The page's own heading, also the first part of <title>. */
  readonly title: string;
  /** The content of <main>, usually starting with <h1>. */
  readonly main: SafeHtml;
  /** Scripts (asset names) to run, each with this response's CSP nonce; none by default. */
  readonly scripts?: readonly string[];
  /** Stylesheets (asset names) after base.css; none by default. */
  readonly stylesheets?: readonly string[];
}

export function renderPage(request: FastifyRequest, content: PageContent): string {
  const site = request.server.siteName;
  const scripts = (content.scripts ?? []).map((name) => html`<script nonce="${request.cspNonce}" src="${assetUrl(name)}" defer></script>`);
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex, nofollow">
<title>${content.title} – ${site}</title>
<link rel="stylesheet" href="${assetUrl('base.css')}">
${(content.stylesheets ?? []).map((name) => html`<link rel="stylesheet" href="${assetUrl(name)}">
`)}<link rel="icon" href="${assetUrl('icon.svg')}" type="image/svg+xml">
${scripts}
</head>
<body>
<a class="skip-link" href="#main">Skip to main content</a>
<header class="site-header"><div class="wrap"><span class="brand">${site}</span></div></header>
<main id="main" class="wrap" tabindex="-1">
${content.main}
</main>
<footer class="site-footer"><div class="wrap">Served securely by SealRelay.</div></footer>
</body>
</html>
`.toString();
}

/** Sends a page as text/html with `status`. */
export function sendPage(request: FastifyRequest, reply: FastifyReply, content: PageContent, status = 200): FastifyReply {
  return reply.code(status).type('text/html; charset=utf-8').send(renderPage(request, content));
}
