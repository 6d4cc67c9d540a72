// The portal end to end, as issue 13 asks: the whole relay (ingress, policy, delivery,
// portal listener, store) in-process, loopback MXs, and a person in real headless
// Chromium. A clinic's message with a PDF attachment is forced toward a patient whose
// MX offers no STARTTLS and who has no key, so the fallback chain ends at the portal;
// the patient clicks the link in the notification that reached their MX, asks for a
// code, reads it from the second email, reads the message, downloads the attachment
// byte-identical and replies with a file; the reply reaches the clinic's MX over TLS,
// threaded to the original; and the message's delivery log (what `sealrelay log
// --message <queue id>` prints: store.queryLog) holds every portal event. The same
// again through a `key_in_link` rule, whose link carries the key part in its #k=
// fragment. Every page is screenshotted under test-artefacts/screenshots/portal-journey/,
// and no page may reach another origin, log a console error or hit the CSP.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { simpleParser, type ParsedMail } from 'mailparser';
import MailComposer from 'nodemailer/lib/mail-composer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatMasterKey, generateMasterKey } from '../../src/portal/master-keys.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { isPortalRecord } from '../../src/store/store.ts';
import { useBrowser, type OpenedPage } from '../helpers/browser.ts';
import { startMxSet, type MxSet, type ReceivedMessage, type StartedMx } from '../helpers/mx.ts';
import { queueIdOf, startTestRelay, submit, testConfig, type TestRelay } from '../helpers/relay.ts';

const SENDER = 'lab@clinic.test';
/** Forced by the default policy; the MX has no STARTTLS and there is no key: the chain ends at the portal. */
const PATIENT = 'pat@patient.test';
/** Sent to the portal by a `key_in_link` rule. */
const LINKED = 'kai@patient.test';
const PORTAL_FROM = 'secure@clinic.test';
/** How long a wait for mail or records may take before the test says what is missing. */
const WAIT_MS = 15_000;
const POLL_MS = 50;

/** A PDF-ish file with every byte value in it (a 7-bit or text-mode path anywhere would change it), and a non-ASCII name. */
const ATTACHMENT_NAME = 'Résultats d’analyse – février 2026.pdf';
const ATTACHMENT = Buffer.concat([
  Buffer.from('%PDF-1.7\n%\xe2\xe3\xcf\xd3\n', 'latin1'),
  Buffer.from(Array.from({ length: 1024 }, (_, i) => i % 256)),
  Buffer.from('\r\n\0\r.\r\n', 'latin1'),
  randomBytes(4096),
  Buffer.from('\n%%EOF\n'),
]);
const REPLY_FILE = { name: 'question.txt', mimeType: 'text/plain', buffer: Buffer.from('Should I repeat the test in March?\n') };

let mxs: MxSet;
let relay: TestRelay;
let portalOrigin: string;
const patientMx = (): StartedMx => mxs.byName('mx.patient.test');
const clinicMx = (): StartedMx => mxs.byName('mx.clinic.test');

beforeAll(async () => {
  const work = mkdtempSync(join(tmpdir(), 'sealrelay-e2e-portal-browser-'));
  const keyFile = join(work, 'portal-k1.key');
  writeFileSync(keyFile, `${formatMasterKey(generateMasterKey())}\n`, { mode: 0o600 });
  mxs = await startMxSet([
    { kind: 'plain', name: 'mx.patient.test' },
    { kind: 'tls13', name: 'mx.clinic.test' },
  ]);
  const at = (n: string) => `${mxs.byName(n).host}:${mxs.port}`;
  const config = testConfig({
    delivery: { routes: { 'patient.test': at('mx.patient.test'), 'clinic.test': at('mx.clinic.test') }, retry: { first_seconds: 3600 } },
    portal: {
      master_keys: [{ id: 'k1', file: keyFile }],
      current_key: 'k1',
      listen: '127.0.0.1:0',
      from: PORTAL_FROM,
      organisation: { name: 'Lakeside Clinic' },
    },
    policies: {
      default: { mode: 'forced' },
      rules: [{ name: 'linked', match: { recipient: [LINKED] }, mode: 'portal', portal: { key_in_link: true } }],
    },
  });
  relay = await startTestRelay(config);
  portalOrigin = new URL(relay.relay.web.find((l) => l.name === 'portal')!.url).origin;
}, 60_000);

afterAll(async () => {
  await relay?.close();
  await mxs?.close();
});

// After the relay's beforeAll: the portal serves the relay's own (generated) certificate, which Chromium is told to accept.
const browser = useBrowser({ trust: () => [readFileSync(relay.config.ingress.cert_file, 'utf8')] });

/** The messages `mx` received for `rcpt` (and matching `which`), once there are at least `n`; polls with a deadline. */
async function mailFor(mx: StartedMx, rcpt: string, n: number, which: (m: ReceivedMessage) => boolean = () => true): Promise<ReceivedMessage[]> {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const got = mx.received.filter((m) => m.envelope.to.includes(rcpt) && which(m));
    if (got.length >= n) return got;
    if (Date.now() > deadline) throw new Error(`${mx.name} has ${got.length} of ${n} messages for ${rcpt} after ${WAIT_MS} ms`);
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

/** The message a clinic's application submits: text body and the PDF, built as nodemailer builds it. */
async function labMessage(to: string, messageId: string, subject: string, text: string): Promise<Buffer> {
  const built = await new MailComposer({
    from: { name: 'Lakeside Lab', address: SENDER },
    to,
    subject,
    messageId,
    text,
    attachments: [{ filename: ATTACHMENT_NAME, content: ATTACHMENT, contentType: 'application/pdf' }],
  })
    .compile()
    .build();
  // SMTP's line ending (RFC 5321 §2.3.8); MailComposer writes bare LF, in 7 bits (attachments base64, names RFC 2047/2231).
  return Buffer.from(built.toString('latin1').replace(/\r?\n/g, '\r\n'), 'latin1');
}

/** The link a person clicks in the notification: the HTML part's button, fragment and all; the text part must carry the same. */
function linkIn(mail: ParsedMail): string {
  const hrefs = [...(mail.html || '').matchAll(/href="([^"]+)"/g)].map((m) => m[1]!.replace(/&amp;/g, '&')).filter((h) => h.startsWith(`${portalOrigin}/m/`));
  expect(hrefs, 'the notification carries a link to the portal').not.toEqual([]);
  const link = hrefs[0]!;
  expect(mail.text ?? '', 'the text part carries the same link').toContain(link);
  return link;
}

interface Journey {
  /** What the relay recorded for the original recipient. */
  readonly queueId: string;
  readonly link: string;
  readonly page: OpenedPage;
  /** Every URL any page of the browser context requested. */
  readonly contextRequests: string[];
}

/**
 * Submits the lab message to `to` and follows it as the recipient would, in the
 * browser, up to the reply being sent. Screenshots are named `<shots>-N-<page>`.
 */
async function journey(to: string, opts: { messageId: string; subject: string; text: string; reply: string; shots: string; keyInLink: boolean }): Promise<Journey> {
  const queueId = queueIdOf(await submit({ port: relay.port, from: SENDER, to: [to], body: await labMessage(to, opts.messageId, opts.subject, opts.text) }));

  // The relay's record for the recipient: the portal carried it, and notified them.
  const records = await relay.waitForRecords((r) => r.some((x) => x.queueId === queueId && x.recipient === to), WAIT_MS);
  const record = records.find((x) => x.queueId === queueId && x.recipient === to)!;
  expect(record).toMatchObject({ method: 'portal', outcome: 'portal-notified', mx: null, tls: null });
  expect(record.portal).toMatchObject({ keyInLink: opts.keyInLink });
  if (opts.keyInLink) {
    expect(record.decision).toMatchObject({ mode: 'portal', rule: 'rule:linked' });
  } else {
    // forced's default chain: no TLS at the MX, no OpenPGP key, no S/MIME certificate, then the portal.
    expect(record.decision).toMatchObject({ mode: 'forced', fallbackChain: ['pgp', 'smime', 'portal'] });
    expect(record.fallback?.reason).toMatch(/^forced: no acceptable TLS on any MX host \(.*STARTTLS/);
    expect(record.fallback?.tried.map((t) => t.split(':')[0])).toEqual(['pgp', 'smime', 'portal']);
  }

  // The notification at the recipient's MX (the first email to them), and its link.
  const [notified] = await mailFor(patientMx(), to, 1);
  const notification = await simpleParser(notified!.raw);
  for (const secret of [opts.subject, opts.text, 'Résultats', 'analyse']) expect(notification.text).not.toContain(secret);
  const link = linkIn(notification);
  expect(link, 'the link never carries the recipient address').not.toContain(to.split('@')[0]!);
  if (opts.keyInLink) expect(link).toMatch(/\/m\/[A-Za-z0-9_-]{43}#k=[A-Za-z0-9_-]{43}$/);
  else expect(link).toMatch(/\/m\/[A-Za-z0-9_-]{43}$/);

  // The person clicks it: the browser opens the whole link, fragment included.
  const session = await browser.session();
  const contextRequests: string[] = [];
  session.context.on('request', (r) => contextRequests.push(r.url()));
  const p = await session.open(link);
  expect(p.response?.status()).toBe(200);
  await p.page.getByRole('heading', { name: 'You have a secure message' }).waitFor();
  await p.shot(`${opts.shots}-1-landing`);

  // "Send me a code": the code arrives as the second email to the recipient.
  await Promise.all([p.page.waitForURL(/\/verify(#.*)?$/), p.page.getByRole('button', { name: 'Send me a code' }).click()]);
  await p.page.getByRole('heading', { name: 'Enter your code' }).waitFor();
  await p.shot(`${opts.shots}-2-code`);
  const mails = await mailFor(patientMx(), to, 2);
  const codeMail = await simpleParser(mails[1]!.raw);
  expect(codeMail.subject).toBe('Your code to open a secure message');
  const code = /Your code is: (\d{6,})/.exec(codeMail.text ?? '')?.[1];
  expect(code, 'the second email carries a code').toBeDefined();

  // The code opens the message: sender, subject, body, the attachment.
  await p.page.getByLabel('Code').fill(code!);
  await Promise.all([p.page.waitForURL(/\/message(#.*)?$/), p.page.locator('#verify button[type=submit]').click()]);
  await p.page.locator('.message-body').waitFor();
  expect(await p.page.locator('h1').textContent()).toBe(opts.subject);
  expect(await p.page.locator('.facts').textContent()).toContain(`Lakeside Lab <${SENDER}>`);
  expect(await p.page.locator('.message-text').textContent()).toContain(opts.text);
  await p.shot(`${opts.shots}-3-message`);
  if (opts.keyInLink) expect(new URL(p.page.url()).hash).toBe(new URL(link).hash);

  const download = p.page.getByRole(opts.keyInLink ? 'button' : 'link', { name: /Download/ });
  const [file] = await Promise.all([p.page.waitForEvent('download'), download.click()]);
  expect(file.suggestedFilename()).toBe(ATTACHMENT_NAME);
  const got = readFileSync((await file.path())!);
  expect(got.length).toBe(ATTACHMENT.length);
  expect(got.equals(ATTACHMENT), 'the downloaded attachment is byte-identical to the one submitted').toBe(true);

  // A secure reply with a small file.
  await Promise.all([p.page.waitForURL(/\/reply(#.*)?$/), p.page.getByRole('link', { name: 'Reply securely' }).click()]);
  await p.page.getByLabel('Your reply').fill(opts.reply);
  await p.page.getByLabel('Attach files (optional)').setInputFiles(REPLY_FILE);
  await p.shot(`${opts.shots}-4-reply`);
  await Promise.all([p.page.waitForLoadState('load'), p.page.getByRole('button', { name: 'Send reply' }).click()]);
  await p.page.getByRole('heading', { name: 'Your reply was sent' }).waitFor();
  await p.shot(`${opts.shots}-5-reply-sent`);
  return { queueId, link, page: p, contextRequests };
}

/** The reply at the clinic's MX: over TLS, threaded to the original, with its text and file; and the relay's record of it. */
async function expectReplyDelivered(j: Journey, opts: { messageId: string; subject: string; reply: string }) {
  // Told apart from the other case's reply by its text (short ASCII: written as it is).
  const [arrived] = await mailFor(clinicMx(), SENDER, 1, (m) => m.raw.toString('latin1').includes(opts.reply));
  expect(arrived!.tls, 'the reply came to the clinic over TLS (forced)').not.toBeNull();
  expect(arrived!.tls!.protocol).toBe('TLSv1.3');
  expect(arrived!.receivedHeader).toContain('using TLSv1.3');
  expect(arrived!.envelope.from).toBe(PORTAL_FROM);
  const reply = await simpleParser(arrived!.raw);
  expect(reply.inReplyTo).toBe(opts.messageId);
  expect([reply.references ?? []].flat()).toContain(opts.messageId);
  expect(reply.subject).toBe(`Re: ${opts.subject}`);
  expect(reply.text).toContain(opts.reply);
  expect(reply.attachments.map((a) => a.filename)).toEqual([REPLY_FILE.name]);
  expect(reply.attachments[0]!.content.equals(REPLY_FILE.buffer)).toBe(true);

  // The reply is a message of its own, with its own record: forced, delivered over TLS.
  const records = await relay.waitForRecords((r) => r.some((x) => x.messageId === reply.messageId && x.recipient === SENDER), WAIT_MS);
  const record = records.find((x) => x.messageId === reply.messageId && x.recipient === SENDER)!;
  expect(record.queueId).not.toBe(j.queueId);
  expect(record).toMatchObject({ outcome: 'delivered', method: 'tls', decision: { mode: 'forced' }, tls: { protocol: 'TLSv1.3' } });
}

/** The message's delivery log, as `sealrelay log --message <queue id>` reads it. */
async function expectLoggedEvents(queueId: string, recipient: string) {
  const store = new SqliteStore(relay.config.store.path);
  try {
    const log = await store.queryLog({ message: queueId });
    const attempt = log.find((r) => !isPortalRecord(r) && r.recipient === recipient);
    expect(attempt).toMatchObject({ method: 'portal', outcome: 'portal-notified' });
    const events = log.filter(isPortalRecord).filter((r) => r.recipient === recipient);
    expect(events.map((e) => e.outcome)).toEqual(['portal-viewed', 'portal-code-sent', 'portal-verified', 'portal-opened', 'portal-downloaded', 'portal-replied']);
    // Web events say who asked: the browser's address and user agent.
    for (const e of events) expect(e).toMatchObject({ ip: '127.0.0.1', userAgent: expect.stringMatching(/Chrome/) });
  } finally {
    await store.close();
  }
}

/** Nothing left the portal's origin, nothing failed in the pages, the CSP refused nothing. */
function expectCleanPages(j: Journey) {
  expect(j.page.requests.length).toBeGreaterThan(0);
  expect(j.page.requests.filter((r) => new URL(r.url).origin !== portalOrigin)).toEqual([]);
  expect(j.contextRequests.filter((u) => new URL(u).origin !== portalOrigin)).toEqual([]);
  expect(j.page.pageErrors).toEqual([]);
  expect(j.page.console.filter((m) => m.type === 'error' || /Content Security Policy|Refused to/i.test(m.text))).toEqual([]);
}

describe('the portal through the whole relay, in Chromium', () => {
  it('forced, no STARTTLS, no key: notified → link → code from the second email → message → attachment byte-identical → reply over TLS → logged', async () => {
    const opts = { messageId: '<results-e2e-1@clinic.test>', subject: 'Your blood test results', text: 'Dear Pat, your HbA1c is 6.1%.', reply: 'Thank you, understood.', shots: 'e2e-forced', keyInLink: false };
    const j = await journey(PATIENT, opts);
    await expectReplyDelivered(j, opts);
    await expectLoggedEvents(j.queueId, PATIENT);
    expectCleanPages(j);
    // Without key_in_link the portal runs no script at all.
    expect(j.page.scripts).toEqual([]);
  });

  it('key_in_link: the link carries #k=…, the item opens in the browser with it, and no request line ever carried the key part', async () => {
    const opts = { messageId: '<results-e2e-2@clinic.test>', subject: 'Your scan report', text: 'Dear Kai, the scan shows nothing of concern.', reply: 'Thanks, good news.', shots: 'e2e-key-in-link', keyInLink: true };
    const j = await journey(LINKED, opts);
    await expectReplyDelivered(j, opts);
    await expectLoggedEvents(j.queueId, LINKED);
    expectCleanPages(j);
    const linkKey = new URL(j.link).hash.slice('#k='.length);
    expect(j.page.requests.filter((r) => r.url.includes(linkKey) && new URL(r.url).hash === '')).toEqual([]);
    // The one script that ran is the portal's own link-key script, on each page that needs it.
    expect(j.page.scripts.length).toBeGreaterThan(0);
    expect(j.page.scripts.filter((s) => !/^\/assets\/portal-link(\.[0-9a-f]{12})?\.js$/.test(new URL(s.url).pathname))).toEqual([]);
  });
});
