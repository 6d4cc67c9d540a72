/**
 * portal-fixture: the portal's web side on a real HTTPS listener (buildWebServer
 * with PortalWebDeps, as relay.ts wires it), a real SQLite store in a temp dir, a
 * Keyring from generateMasterKey, items sealed with sealPortalItem and stored with
 * putPortalItem, and queueMail = store.enqueue: the code email is read back from the
 * store. The clock is the test's to move (codes, locks, sessions and expiry follow it).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { configSchema, type Config } from '../../../src/config/schema.ts';
import type { PortalWebDeps } from '../../../src/http/portal/index.ts';
import { buildWebServer } from '../../../src/http/listeners.ts';
import type { HttpServer } from '../../../src/http/server.ts';
import { createLogger } from '../../../src/log.ts';
import { generateMasterKey, Keyring } from '../../../src/portal/master-keys.ts';
import { hashPassphrase } from '../../../src/portal/passphrase.ts';
import { sealPortalItem } from '../../../src/portal/vault.ts';
import { newQueueId } from '../../../src/store/queue-id.ts';
import { SqliteStore } from '../../../src/store/sqlite/sqlite-store.ts';
import type { MessageOrigin, NewMessage, PortalItem } from '../../../src/store/store.ts';
import { InjectClient, testClock, testWebCertificate, type TestClock, type TestWebServer } from '../../helpers/web-server.ts';

export const RECIPIENT = 'pat@patient.example';
export const SENDER = 'lab@clinic.example';

export interface Sealed {
  readonly id: string;
  readonly token: string;
  readonly linkKey: string | null;
  /** https://…/m/<token>, with #k=<linkKey> for keyInLink items. */
  readonly url: string;
  /** The path alone (no fragment). */
  readonly path: string;
}

export interface Queued {
  readonly queueId: string;
  readonly origin: MessageOrigin | null;
  readonly sender: string;
  readonly recipients: readonly string[];
}

export interface PortalFixture {
  readonly server: HttpServer;
  readonly web: TestWebServer;
  readonly origin: string;
  readonly store: SqliteStore;
  readonly keyring: Keyring;
  readonly clock: TestClock;
  /** What queueMail was given, in order. */
  readonly queued: Queued[];
  config: Config;
  seal(mime: string | Buffer, opts?: { recipient?: string; keyInLink?: boolean; passphrase?: string; messageId?: string }): Promise<Sealed>;
  item(id: string): Promise<PortalItem>;
  /** The code in the newest code email to `recipient`. */
  lastCode(recipient?: string): Promise<string>;
  body(queueId: string): Promise<string>;
  /** Portal records of an item, oldest first: "outcome" or "outcome (detail)". */
  events(id: string): Promise<string[]>;
  client(): InjectClient;
  close(): Promise<void>;
}

export function portalConfig(portal: Record<string, unknown> = {}): Config {
  return configSchema.parse({ ingress: { listeners: {} }, server: { hostname: 'relay.test' }, portal: { organisation: { name: 'Clinic Example' }, ...portal } });
}

export async function startPortal(opts: { portal?: Record<string, unknown> } = {}): Promise<PortalFixture> {
  const dir = mkdtempSync(join(tmpdir(), 'sealrelay-portal-web-'));
  const store = new SqliteStore(join(dir, 'sealrelay.db'));
  const keyring = new Keyring([{ id: 'k1', key: generateMasterKey() }], 'k1');
  const clock = testClock();
  const queued: Queued[] = [];
  const deps: PortalWebDeps = {
    store,
    keyring: () => keyring,
    async queueMail(message: NewMessage) {
      queued.push({ queueId: message.queueId, origin: message.origin ?? null, sender: message.sender, recipients: [...message.recipients] });
      await store.enqueue(message);
    },
  };
  const pair = testWebCertificate();
  const fx: PortalFixture = {
    config: portalConfig(opts.portal),
  } as PortalFixture;
  const server = await buildWebServer('portal', {
    config: fx.config,
    currentConfig: () => fx.config,
    logger: createLogger(process.env.SEALRELAY_TEST_LOG ?? 'silent'),
    tls: { cert: pair.certPem, key: pair.keyPem },
    listen: { host: '127.0.0.1', port: 0 },
    now: clock.now,
    portal: deps,
  });
  const { port } = await server.listen();
  const origin = `https://127.0.0.1:${port}`;
  const web: TestWebServer = { server, origin, port, cert: pair, clock, notes: [], close: () => server.close() };
  return Object.assign(fx, {
    server,
    web,
    origin,
    store,
    keyring,
    clock,
    queued,
    async seal(mime: string | Buffer, o: { recipient?: string; keyInLink?: boolean; passphrase?: string; messageId?: string } = {}) {
      const now = clock.now();
      const sealed = sealPortalItem(
        keyring,
        { queueId: newQueueId(now), seq: 0, messageId: o.messageId ?? '<orig@clinic.example>', sender: SENDER, recipient: o.recipient ?? RECIPIENT, createdAt: now, expiresAt: now + 30 * 86_400_000 },
        Buffer.isBuffer(mime) ? mime : Buffer.from(mime.replace(/\r?\n/g, '\r\n')),
        { keyInLink: o.keyInLink },
      );
      await store.putPortalItem({ ...sealed.item, passphraseHash: o.passphrase ? hashPassphrase(o.passphrase) : null });
      const path = `/m/${sealed.token}`;
      return { id: sealed.item.id, token: sealed.token, linkKey: sealed.linkKey, path, url: `${origin}${path}${sealed.linkKey ? `#k=${sealed.linkKey}` : ''}` };
    },
    async item(id: string) {
      const item = await store.getPortalItem(id);
      if (!item) throw new Error(`no item ${id}`);
      return item;
    },
    async body(queueId: string) {
      return (await store.readBody(queueId))!.toString('utf8');
    },
    async lastCode(recipient = RECIPIENT) {
      const mail = [...queued].reverse().find((q) => q.origin === 'portal-code' && q.recipients.includes(recipient));
      if (!mail) throw new Error(`no code email to ${recipient}`);
      const m = /Your code is: (\d+)/.exec(await fx.body(mail.queueId));
      if (!m) throw new Error('no code in the code email');
      return m[1]!;
    },
    async events(id: string) {
      const log = await store.queryLog({});
      return log
        .filter((r): r is Extract<typeof r, { kind: 'portal' }> => (r as { kind?: string }).kind === 'portal' && (r as { itemId?: string }).itemId === id)
        .map((r) => (r.detail ? `${r.outcome} (${r.detail})` : r.outcome));
    },
    client: () => new InjectClient(web),
    async close() {
      await server.close();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  });
}

/** A plain message as an application sends lab results, with a PDF attachment. */
export function labMessage(over: { subject?: string; fromName?: string; html?: string; text?: string; attachmentName?: string; attachment?: Buffer; to?: string; cc?: string } = {}): string {
  const attachment = (over.attachment ?? Buffer.from('%PDF-1.4 results\n')).toString('base64').replace(/.{76}/g, '$&\n');
  const name = over.attachmentName ?? 'results.pdf';
  const encodedName = /^[\x20-\x7e]*$/.test(name) && !/["\\]/.test(name) ? `"${name}"` : `"=?UTF-8?B?${Buffer.from(name).toString('base64')}?="`;
  const fromName = over.fromName ?? 'City Lab';
  const encodedFrom = /^[A-Za-z0-9 .]*$/.test(fromName) ? fromName : `=?UTF-8?B?${Buffer.from(fromName).toString('base64')}?=`;
  const subject = over.subject ?? 'Your results';
  const encodedSubject = /^[\x20-\x7e]*$/.test(subject) ? subject : `=?UTF-8?B?${Buffer.from(subject).toString('base64')}?=`;
  const body = over.html
    ? ['Content-Type: text/html; charset=utf-8', 'Content-Transfer-Encoding: base64', '', Buffer.from(over.html).toString('base64').replace(/.{76}/g, '$&\n')]
    : ['Content-Type: text/plain; charset=utf-8', '', over.text ?? 'Dear Pat,\nyour HbA1c is 6.1%.\n'];
  return [
    `From: ${encodedFrom} <lab@clinic.example>`,
    `To: ${over.to ?? 'Pat <pat@patient.example>'}`,
    ...(over.cc ? [`Cc: ${over.cc}`] : []),
    `Subject: ${encodedSubject}`,
    'Message-ID: <orig@clinic.example>',
    'Date: Thu, 03 Dec 2026 10:00:00 +0000',
    'MIME-Version: 1.0',
    'Content-Type: multipart/mixed; boundary="b1"',
    '',
    '--b1',
    ...body,
    '--b1',
    `Content-Type: application/pdf; name=${encodedName}`,
    `Content-Disposition: attachment; filename=${encodedName}`,
    'Content-Transfer-Encoding: base64',
    '',
    attachment,
    '--b1--',
    '',
  ].join('\n');
}
