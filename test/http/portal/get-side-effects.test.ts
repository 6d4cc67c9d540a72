// GET never changes state on the portal listener with its pages (src/http/safe-requests.ts),
// as test/http/get-side-effects.test.ts shows for the listener without them. Every GET
// route the portal registers is requested (GET and HEAD) by a browser holding a
// verified session, a CSRF cookie, a pending code with a try used and failed
// attempts on record — for its own item, another item, a keyInLink item, a
// passphrase item, a recalled one and a made-up token — and every state probe
// (sessions, rate limits, and the portal's: items' codes, tries and locks, the
// portal records that are state, the mail queue) reads the same after each. The
// traces of reading (viewed, opened, downloaded) are evidence a GET may leave; they
// are checked apart: a GET of a link leaves only `portal-viewed`. A GET route without
// a sample fails the test.
import { assetUrl } from '../../../src/http/assets.ts';
import { afterEach, expect, it } from 'vitest';
import { csrfTokenIn } from '../../helpers/web-server.ts';
import { labMessage, startPortal, type PortalFixture } from './portal-fixture.ts';

let fx: PortalFixture;
afterEach(async () => fx?.close());

it('on every GET route of the portal listener with its pages', async () => {
  fx = await startPortal();
  const mine = await fx.seal(labMessage());
  const pending = await fx.seal(labMessage());
  const linked = await fx.seal(labMessage(), { keyInLink: true });
  const guarded = await fx.seal(labMessage(), { passphrase: 'blue tractor 42' });
  const recalled = await fx.seal(labMessage());
  await fx.store.recallPortalItems((await fx.item(recalled.id)).queueId, 'tester');

  const c = fx.client();
  // A verified session for `mine`; a code pending on `pending` with one try used.
  await c.post(`${mine.path}/code`, { _csrf: csrfTokenIn((await c.get(mine.path)).body) });
  await c.post(`${mine.path}/verify`, { _csrf: csrfTokenIn((await c.get(`${mine.path}/verify`)).body), code: await fx.lastCode() });
  const other = fx.client();
  await other.post(`${pending.path}/code`, { _csrf: csrfTokenIn((await other.get(pending.path)).body) });
  const wrong = (await fx.lastCode()) === '000000' ? '111111' : '000000';
  expect((await other.post(`${pending.path}/verify`, { _csrf: csrfTokenIn((await other.get(`${pending.path}/verify`)).body), code: wrong })).statusCode).toBe(400);

  await fx.server.app.ready();
  const samples: Record<string, string[]> = {
    '/': ['/'],
    '/healthz': ['/healthz'],
    '/assets/:file': [assetUrl('base.css'), assetUrl('portal.css'), assetUrl('portal-link.js'), '/assets/missing.css'],
  };
  const suffixOf: Record<string, string> = {
    '/m/:token': '',
    '/m/:token/verify': '/verify',
    '/m/:token/passphrase': '/passphrase',
    '/m/:token/message': '/message',
    '/m/:token/reply': '/reply',
    '/m/:token/attachments/:n': '/attachments/1',
  };
  const paths = [mine, pending, linked, guarded, recalled].map((i) => i.path).concat(`/m/${'A'.repeat(43)}`, '/m/nonsense');
  for (const [route, suffix] of Object.entries(suffixOf)) samples[route] = paths.map((p) => p + suffix).concat(route === '/m/:token/attachments/:n' ? [`${mine.path}/attachments/9`, `${mine.path}/attachments/x`] : []);

  const getRoutes = [...new Set(fx.server.routes.filter((r) => r.method === 'GET').map((r) => r.url))];
  expect(getRoutes.filter((url) => !samples[url]), 'GET routes without a sample').toEqual([]);

  const before = await fx.server.stateProbes.snapshot();
  expect((before.sessions as unknown[]).length).toBe(1);
  expect((before['rate-limits'] as unknown[]).length).toBeGreaterThan(0);
  const portal = before.portal as { items: { code: unknown }[]; records: string[]; queue: string[] };
  expect(portal.items.filter((i) => i.code).length).toBe(1);
  expect(portal.queue.length).toBe(2);
  const viewedBefore = (await fx.store.queryLog({ outcome: 'portal-viewed' })).length;

  const statuses: Record<string, number> = {};
  for (const [who, client] of [['verified', c], ['pending', other], ['stranger', fx.client()]] as const) {
    for (const url of getRoutes.flatMap((r) => samples[r]!)) {
      for (const method of ['GET', 'HEAD'] as const) {
        const res = await client.request(method, url);
        statuses[`${who} ${method} ${url}`] = res.statusCode;
        expect(await fx.server.stateProbes.snapshot(), `${method} ${url} changed state`).toEqual(before);
      }
    }
  }
  // The verified session really read its message on a GET (so the probe watched a real open).
  expect(statuses[`verified GET ${mine.path}/message`]).toBe(200);
  expect(statuses[`verified GET ${mine.path}/attachments/1`]).toBe(200);
  expect(statuses[`stranger GET ${mine.path}/message`]).toBe(401);
  expect(statuses[`stranger GET ${recalled.path}`]).toBe(410);
  // Landing pages left their trace (evidence); nothing else did.
  expect((await fx.store.queryLog({ outcome: 'portal-viewed' })).length).toBeGreaterThan(viewedBefore);
});
