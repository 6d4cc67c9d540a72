// The unsubscribe pages in real headless Chromium against a real listener and store:
// opening the link (as a person, or a scanner would) changes nothing; the page's own
// button unsubscribes; both pages are screenshotted (test-artefacts/screenshots/),
// run no script, load nothing remote and fit a phone.
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { configSchema } from '../../../src/config/schema.ts';
import { buildWebServer } from '../../../src/http/listeners.ts';
import type { HttpServer } from '../../../src/http/server.ts';
import { createLogger } from '../../../src/log.ts';
import { LinkSigner, linkUrl } from '../../../src/reporting/tracking/links.ts';
import { SqliteStore } from '../../../src/store/sqlite/sqlite-store.ts';
import { useBrowser } from '../../helpers/browser.ts';
import { testWebCertificate } from '../../helpers/web-server.ts';
import { HOUR, message } from '../../cli/harness.ts';

const browser = useBrowser({ trust: () => [testWebCertificate().certPem] });
const key = randomBytes(32);
let store: SqliteStore;
let server: HttpServer;
let origin: string;

beforeEach(async () => {
  store = new SqliteStore(join(mkdtempSync(join(tmpdir(), 'sealrelay-unsub-browser-')), 'store.db'));
  await store.enqueue(message('QA', ['ann@patient.example'], Date.now() - HOUR));
  const pair = testWebCertificate();
  const config = configSchema.parse({ ingress: { listeners: {} }, portal: { listen: '127.0.0.1:0', organisation: { name: 'Lakeside Clinic' } }, tracking: { key: { env: 'K' } } });
  server = await buildWebServer('portal', { config, logger: createLogger('silent'), tls: { cert: pair.certPem, key: pair.keyPem }, tracking: { store, key: () => key } });
  origin = (await server.listen()).url;
});
afterEach(async () => {
  await server.close();
  await store.close();
});

describe('the unsubscribe pages', () => {
  for (const [device, viewport] of [['desktop', undefined], ['phone', { width: 360, height: 740 }]] as const) {
    it(`on a ${device}: opening the link asks and changes nothing; the button unsubscribes`, async () => {
      const session = await browser.session();
      const url = linkUrl(origin, new LinkSigner(key), { kind: 'unsubscribe', queueId: 'QA', seq: 0 });
      const p = await session.open(url, { viewport });
      expect(p.response?.status()).toBe(200);
      expect(await p.page.locator('h1').textContent()).toBe('Unsubscribe');
      expect(await p.page.locator('main').textContent()).toContain('clinic.example');
      await p.shot(`unsubscribe-${device}-1-confirm`);
      expect(await store.listSuppressions()).toEqual([]);
      expect(await store.listEvents({ limit: 10, types: ['unsubscribed'] })).toEqual([]);

      await Promise.all([p.page.waitForLoadState('load'), p.page.getByRole('button', { name: 'Unsubscribe' }).click()]);
      await p.page.getByRole('heading', { name: 'You are unsubscribed' }).waitFor();
      await p.shot(`unsubscribe-${device}-2-done`);
      expect(await p.page.evaluate('document.documentElement.scrollWidth <= window.innerWidth')).toBe(true);
      expect((await store.listSuppressions()).map((s) => `${s.senderDomain} ${s.recipient}`)).toEqual(['clinic.example ann@patient.example']);
      expect(p.scripts).toEqual([]);
      expect(p.pageErrors).toEqual([]);
      expect(p.requests.filter((r) => new URL(r.url).origin !== origin)).toEqual([]);
    });
  }
});
