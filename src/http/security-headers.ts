// The response headers every page and endpoint carries, set in one place.
//
// Content-Security-Policy: nothing is allowed unless named. Scripts run only when
// they carry this response's nonce (a fresh random value per response), so markup
// that slipped past escaping cannot run script: no inline <script>, no on*=
// handlers, no javascript: URLs. Styles come from our own stylesheet only (no
// style attributes), images from ourselves (data: only on routes that ask for it),
// forms post only to ourselves, nothing may frame us, <base> cannot redirect
// relative URLs, and DOM sinks that parse HTML need Trusted Types.
//
// The rest: HSTS (browsers refuse plain HTTP to us for a year), nosniff (a
// download is never run as a script or page), no Referer (portal URLs carry
// tokens), Permissions-Policy (no camera, microphone, location, payment, …),
// COOP/CORP (no other site gets a window handle on us or embeds our responses),
// and no caching of anything dynamic (a shared computer's back button must not
// show a message).
import { randomBytes } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

/** What a route may add to the default policy; there is deliberately no way to allow inline script or style. */
export interface CspExtras {
  /** Allow data: images (e.g. an inline logo); off by default. */
  readonly imgData?: true;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** This response's CSP nonce: the only way a <script> runs on our pages. */
    cspNonce: string;
  }
  interface FastifyContextConfig {
    csp?: CspExtras;
  }
}

/** One year, in seconds (the minimum the HSTS preload list accepts). */
const HSTS_MAX_AGE_SECONDS = 31_536_000;
/** 128 bits of nonce. */
const NONCE_BYTES = 16;

/** Features no page of ours uses; each is turned off for us and anything we embed. */
const PERMISSIONS_POLICY = ['accelerometer', 'autoplay', 'camera', 'display-capture', 'geolocation', 'gyroscope', 'magnetometer', 'microphone', 'midi', 'payment', 'publickey-credentials-get', 'screen-wake-lock', 'serial', 'usb', 'xr-spatial-tracking', 'browsing-topics']
  .map((f) => `${f}=()`)
  .join(', ');

export function contentSecurityPolicy(nonce: string, extras: CspExtras = {}): string {
  return [
    "default-src 'none'",
    `script-src 'nonce-${nonce}'`,
    "style-src 'self'",
    extras.imgData ? "img-src 'self' data:" : "img-src 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
    "base-uri 'none'",
    "require-trusted-types-for 'script'",
  ].join('; ');
}

const FIXED_HEADERS: Readonly<Record<string, string>> = {
  'strict-transport-security': `max-age=${HSTS_MAX_AGE_SECONDS}`,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'permissions-policy': PERMISSIONS_POLICY,
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
  // For browsers that predate frame-ancestors.
  'x-frame-options': 'DENY',
  'origin-agent-cluster': '?1',
};

export function registerSecurityHeaders(app: FastifyInstance): void {
  app.decorateRequest('cspNonce', '');
  app.addHook('onRequest', async (request: FastifyRequest) => {
    request.cspNonce = randomBytes(NONCE_BYTES).toString('base64');
  });
  app.addHook('onSend', async (request: FastifyRequest, reply: FastifyReply, payload) => {
    reply.header('content-security-policy', contentSecurityPolicy(request.cspNonce, request.routeOptions.config?.csp));
    for (const [name, value] of Object.entries(FIXED_HEADERS)) reply.header(name, value);
    // Assets set their own (long, immutable); everything else is private to this response.
    if (!reply.hasHeader('cache-control')) reply.header('cache-control', 'no-store');
    return payload;
  });
}
