// The tracking and unsubscribe routes on the public (portal) listener.
//
//   GET  /t/o/<token>  the open pixel: records `opened`, answers a 1×1 GIF
//   GET  /t/c/<token>  the click redirector: records `clicked`, 302 to the URL the token carries
//   GET  /u/<token>    the unsubscribe page: asks, changes nothing
//   POST /u/<token>    unsubscribes (RFC 8058 one-click: body List-Unsubscribe=One-Click)
//
// GET never changes state (DESIGN, http/safe-requests.ts): the pixel and the
// redirector only record that the link was fetched — an observation, like a portal
// landing page's `portal-viewed`, marked `automated` when a machine likely made it
// (machines.ts) — and unsubscribing takes a POST. Mail providers make that POST
// themselves from the List-Unsubscribe-Post header, from their servers, with no
// cookie and no CSRF token: the signed link is the authority (whoever holds it holds
// the mail it came in), so the route is exempt from the CSRF check as a signed-link
// route, and the confirmation page's own button posts the same body. A token that
// does not verify is a 404: nothing recorded, no redirect.
import type { FastifyRequest } from 'fastify';
import type { Config } from '../../config/schema.ts';
import { html } from '../../html.ts';
import { HttpError } from '../../http/errors.ts';
import { sendPage } from '../../http/layout.ts';
import { assertMayChangeState } from '../../http/safe-requests.ts';
import type { HttpServer } from '../../http/server.ts';
import { domainOf, type Store } from '../../store/store.ts';
import { LinkSigner, MAX_TOKEN, type LinkKind, type LinkTarget } from './links.ts';
import { machineReason } from './machines.ts';

/** What the relay hands the tracking routes (src/relay.ts). */
export interface TrackingWebDeps {
  readonly store: Store;
  /** tracking.key as configured now; null when none is. */
  key(): Buffer | null;
}

/** A transparent 1×1 GIF. */
const PIXEL = Buffer.from('R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7', 'base64');
/** Longest User-Agent considered (the rest is not needed to recognise a proxy). */
const USER_AGENT_MAX = 300;

const LINK_INVALID = new HttpError(404, 'This link does not work', 'The link may be incomplete or changed. Open it from the email again, or contact the sender.');
const ONE_CLICK_FIELD = 'List-Unsubscribe';
const ONE_CLICK_VALUE = 'One-Click';

export function registerTracking(server: HttpServer, deps: TrackingWebDeps, opts: { config: () => Config; now: () => number }): void {
  const { app } = server;

  const target = (token: unknown, kind: LinkKind): LinkTarget => {
    const key = deps.key();
    if (!key || typeof token !== 'string' || token.length > MAX_TOKEN) throw LINK_INVALID;
    const t = new LinkSigner(key).verify(token);
    if (!t || t.kind !== kind) throw LINK_INVALID;
    return t;
  };

  /** Records an open or click of a known recipient; a signed link to one the relay no longer knows records nothing. */
  const observe = async (request: FastifyRequest, t: LinkTarget, kind: 'open' | 'click') => {
    const recipient = await deps.store.trackedRecipient(t.queueId, t.seq);
    if (!recipient) return;
    const at = opts.now();
    const agent = request.headers['user-agent'];
    const c = opts.config().tracking;
    const why = machineReason(kind, { method: request.method, userAgent: typeof agent === 'string' ? agent.slice(0, USER_AGENT_MAX) : null, at, deliveredAt: recipient.deliveredAt }, { openSeconds: c.machine_open_seconds, clickSeconds: c.machine_click_seconds });
    await deps.store.recordTracking(t.queueId, t.seq, kind === 'open' ? 'opened' : 'clicked', { at, automated: why !== null });
  };

  app.get<{ Params: { token: string } }>('/t/o/:token', async (request, reply) => {
    const t = target(request.params.token, 'open');
    await observe(request, t, 'open');
    return reply.code(200).type('image/gif').header('cache-control', 'no-store, private').send(PIXEL);
  });

  // A wildcard: a click token carries its URL and may be longer than a path parameter may be.
  app.get<{ Params: { '*': string } }>('/t/c/*', async (request, reply) => {
    const t = target(request.params['*'], 'click');
    await observe(request, t, 'click');
    return reply.code(302).header('cache-control', 'no-store, private').header('location', t.url!).send();
  });

  app.get<{ Params: { token: string } }>('/u/:token', async (request, reply) => {
    const t = target(request.params.token, 'unsubscribe');
    const recipient = await deps.store.trackedRecipient(t.queueId, t.seq);
    if (!recipient) throw LINK_INVALID;
    const senderDomain = domainOf(recipient.sender);
    const [already] = await deps.store.suppressedAmong(senderDomain, [recipient.recipient]);
    reply.header('cache-control', 'no-store, private');
    return sendPage(request, reply, already ? donePage(senderDomain) : confirmPage(senderDomain, request.params.token));
  });

  app.post<{ Params: { token: string }; Body: unknown }>('/u/:token', { config: { csrf: 'signed-link' } }, async (request, reply) => {
    const t = target(request.params.token, 'unsubscribe');
    const body = request.body as Record<string, unknown> | null | undefined;
    if (!body || typeof body !== 'object' || body[ONE_CLICK_FIELD] !== ONE_CLICK_VALUE) {
      throw new HttpError(400, 'This request is not an unsubscribe', `The form field ${ONE_CLICK_FIELD} must be ${ONE_CLICK_VALUE} (RFC 8058). Use the button on the unsubscribe page.`);
    }
    assertMayChangeState(request, 'unsubscribe');
    const done = await deps.store.unsubscribe(t.queueId, t.seq, opts.now());
    if (!done) throw LINK_INVALID;
    reply.header('cache-control', 'no-store, private');
    return sendPage(request, reply, donePage(done.suppression.senderDomain));
  });

  // For the GET side-effect test: suppressions are state; opens and clicks are observations.
  server.stateProbes.add('suppressions', async () => (await deps.store.listSuppressions()).map((s) => `${s.senderDomain} ${s.recipient} ${s.source} ${s.createdAt}`));
}

function confirmPage(senderDomain: string, token: string) {
  return {
    title: 'Unsubscribe',
    main: html`<h1>Unsubscribe</h1>
<p>Stop receiving mail from <strong>${senderDomain}</strong> at this address?</p>
<p>Messages you must get, such as receipts or results, may still be sent.</p>
<form method="post" action="/u/${token}">
<input type="hidden" name="${ONE_CLICK_FIELD}" value="${ONE_CLICK_VALUE}">
<button type="submit" class="button">Unsubscribe</button>
</form>`,
  };
}

function donePage(senderDomain: string) {
  return {
    title: 'You are unsubscribed',
    main: html`<h1>You are unsubscribed</h1>
<p>This address will get no more mail from <strong>${senderDomain}</strong> through this service, apart from messages you must get, such as receipts or results.</p>`,
  };
}

