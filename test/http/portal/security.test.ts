// The portal's recipient side against issue 13's security points, each a test that
// fails when its defence is removed (mutations listed in the report): a GET of the
// link (a mail scanner) sends no code and counts no open; tokens cannot be guessed
// and a recalled or expired item shows only a clear page; codes expire; the try
// limit locks; one recipient's session opens no other item (IDOR); replies need
// the session and the CSRF token; sending codes is rate-limited; with key_in_link
// the item cannot be opened without the link's fragment. Requests go through
// fastify's inject against a real listener, a real SQLite store and real keys; the
// browser-side points (XSS, the fragment) are in portal-browser.test.ts.
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { csrfTokenIn, InjectClient } from '../../helpers/web-server.ts';
import { labMessage, RECIPIENT, startPortal, type PortalFixture, type Sealed } from './portal-fixture.ts';

let fx: PortalFixture;
afterEach(async () => fx?.close());

/** Asks for a code, reads it from the queued email, enters it: the client then holds a verified session. */
async function verify(c: InjectClient, item: Sealed, recipient = RECIPIENT): Promise<void> {
  const landing = await c.get(item.path);
  expect(landing.statusCode).toBe(200);
  const sent = await c.post(`${item.path}/code`, { _csrf: csrfTokenIn(landing.body) });
  expect(sent.statusCode).toBe(303);
  const page = await c.get(`${item.path}/verify`);
  const res = await c.post(`${item.path}/verify`, { _csrf: csrfTokenIn(page.body), code: await fx.lastCode(recipient) });
  expect(res.statusCode).toBe(303);
}

describe('a GET of the link (what a mail scanner does)', () => {
  it('shows the landing page only: no code sent, no open counted, nothing of the message, the item unchanged; one trace marked possibly automated', async () => {
    fx = await startPortal();
    const item = await fx.seal(labMessage({ subject: 'SUBJECT-MARKER', text: 'BODY-MARKER' }));
    const before = await fx.item(item.id);
    const scanner = fx.client();
    for (const method of ['GET', 'HEAD'] as const) {
      const res = await scanner.request(method, item.path);
      expect(res.statusCode).toBe(200);
      expect(res.body).not.toMatch(/SUBJECT-MARKER|BODY-MARKER|results\.pdf/);
    }
    expect(fx.queued).toEqual([]);
    expect(await fx.item(item.id)).toEqual(before);
    expect(await fx.events(item.id)).toEqual(['portal-viewed (possibly automated)', 'portal-viewed (possibly automated)']);
    // And every later step's GET, without the POSTs, opens nothing either.
    for (const path of ['verify', 'passphrase', 'message', 'reply', 'attachments/1']) {
      const res = await scanner.get(`${item.path}/${path}`);
      expect(res.body).not.toMatch(/SUBJECT-MARKER|BODY-MARKER/);
    }
    expect(fx.queued).toEqual([]);
    expect((await fx.events(item.id)).filter((e) => !e.startsWith('portal-viewed'))).toEqual([]);
  });

  it('the code is sent only by the POST, and "opened" is counted only once the code is verified', async () => {
    fx = await startPortal();
    const item = await fx.seal(labMessage());
    const c = fx.client();
    await verify(c, item);
    expect(fx.queued.map((q) => [q.origin, q.recipients])).toEqual([['portal-code', [RECIPIENT]]]);
    expect(await fx.events(item.id)).toEqual(['portal-viewed (possibly automated)', 'portal-code-sent', 'portal-verified']);
    const page = await c.get(`${item.path}/message`);
    expect(page.statusCode).toBe(200);
    expect(page.body).toContain('Your results');
    // The pages carry the sending organisation's name (portal.organisation.name), escaped like any text.
    expect(page.body).toMatch(/<title>[^<]* – Clinic Example<\/title>/);
    expect((await fx.events(item.id)).at(-1)).toBe('portal-opened');
  });
});

describe('links', () => {
  it('guessed, malformed or altered tokens find nothing and say so plainly (404)', async () => {
    fx = await startPortal();
    const item = await fx.seal(labMessage());
    const c = fx.client();
    const altered = item.token.slice(0, -1) + (item.token.endsWith('A') ? 'B' : 'A');
    for (const path of [`/m/${randomBytes(32).toString('base64url')}`, `/m/${altered}`, '/m/short', `/m/${item.token}x`, `/m/${altered}/message`]) {
      const res = await c.get(path);
      expect(res.statusCode, path).toBe(404);
      expect(res.body).toMatch(/We could not find this message|Page not found/);
    }
    // A guess at the code step sends nothing.
    const landing = await c.get(item.path);
    expect((await c.post(`/m/${altered}/code`, { _csrf: csrfTokenIn(landing.body) })).statusCode).toBe(404);
    expect(fx.queued).toEqual([]);
  });

  it('after a recall, the link, the session and every step show only "withdrawn" (410)', async () => {
    fx = await startPortal();
    const item = await fx.seal(labMessage({ subject: 'SUBJECT-MARKER' }));
    const c = fx.client();
    await verify(c, item);
    const open = await c.get(`${item.path}/message`);
    expect(open.statusCode).toBe(200);
    const token = csrfTokenIn(open.body);
    const { queueId } = await fx.item(item.id);
    await fx.store.recallPortalItems(queueId, 'tester');
    for (const path of ['', '/verify', '/message', '/attachments/1', '/reply']) {
      const res = await c.get(item.path + path);
      expect(res.statusCode, path).toBe(410);
      expect(res.body).toContain('This message was withdrawn');
      expect(res.body).not.toContain('SUBJECT-MARKER');
    }
    // Reusing the link to ask for a new code: refused, nothing sent.
    const queued = fx.queued.length;
    const res = await c.post(`${item.path}/code`, { _csrf: token });
    expect(res.statusCode).toBe(410);
    expect(fx.queued.length).toBe(queued);
  });

  it('past its expiry (before and after the sweep) the item shows only "expired" (410)', async () => {
    fx = await startPortal();
    const item = await fx.seal(labMessage({ subject: 'SUBJECT-MARKER' }));
    const c = fx.client();
    await verify(c, item);
    fx.clock.advance(31 * 86_400_000);
    for (const path of ['', '/message', '/attachments/1']) {
      const res = await c.get(item.path + path);
      expect(res.statusCode, path).toBe(410);
      expect(res.body).toContain('This message has expired');
      expect(res.body).not.toContain('SUBJECT-MARKER');
    }
    await fx.store.expirePortalItems(fx.clock.now(), 10);
    expect((await c.get(item.path)).statusCode).toBe(410);
  });
});

describe('the one-time code', () => {
  it('is 6 digits by default, expires after its lifetime (the page says to ask for a new one), and a used code cannot be used again', async () => {
    fx = await startPortal();
    const item = await fx.seal(labMessage());
    const c = fx.client();
    const landing = await c.get(item.path);
    await c.post(`${item.path}/code`, { _csrf: csrfTokenIn(landing.body) });
    const code = await fx.lastCode();
    expect(code).toMatch(/^\d{6}$/);
    fx.clock.advance(600_000);
    const page = await c.get(`${item.path}/verify`);
    const late = await c.post(`${item.path}/verify`, { _csrf: csrfTokenIn(page.body), code });
    expect(late.statusCode).toBe(400);
    expect(late.body).toContain('Your code has expired');
    expect((await c.get(`${item.path}/message`)).statusCode).toBe(401);
    // A fresh code works once.
    await c.post(`${item.path}/code`, { _csrf: csrfTokenIn(late.body) });
    const fresh = await fx.lastCode();
    const ok = await c.post(`${item.path}/verify`, { _csrf: csrfTokenIn((await c.get(`${item.path}/verify`)).body), code: fresh });
    expect(ok.statusCode).toBe(303);
    const other = fx.client();
    const again = await other.post(`${item.path}/verify`, { _csrf: csrfTokenIn((await other.get(`${item.path}/verify`)).body), code: fresh });
    expect(again.statusCode).toBe(400);
    expect(again.body).toContain('Your code has expired');
    expect((await other.get(`${item.path}/message`)).statusCode).toBe(401);
  });

  it('a code that is not digits (markup, too long, missing) is refused plainly: no try used, nothing echoed', async () => {
    fx = await startPortal({ portal: { code: { tries: 3 } } });
    const item = await fx.seal(labMessage());
    const c = fx.client();
    await c.post(`${item.path}/code`, { _csrf: csrfTokenIn((await c.get(item.path)).body) });
    for (const code of ['<script>alert(1)</script>', '9'.repeat(5000), '', '12345']) {
      const res = await c.post(`${item.path}/verify`, { _csrf: csrfTokenIn((await c.get(`${item.path}/verify`)).body), code });
      expect(res.statusCode, code.slice(0, 20)).toBe(400);
      expect(res.body).toContain('Enter the 6-digit code from the email, in numbers only.');
      expect(res.body).not.toContain('<script>alert(1)');
    }
    // None of them counted as a wrong try: all three are left for the real code.
    expect((await fx.events(item.id)).filter((e) => e.startsWith('portal-code-failed'))).toEqual([]);
    const wrong = (await fx.lastCode()) === '000000' ? '111111' : '000000';
    const res = await c.post(`${item.path}/verify`, { _csrf: csrfTokenIn((await c.get(`${item.path}/verify`)).body), code: wrong });
    expect(res.body).toContain('You have 2 tries left.');
  });

  it('wrong codes say how many tries are left; the last locks the item (no code sent or accepted) and the page says until when', async () => {
    fx = await startPortal({ portal: { code: { tries: 3, lock_seconds: 900 } } });
    const item = await fx.seal(labMessage());
    const c = fx.client();
    await c.post(`${item.path}/code`, { _csrf: csrfTokenIn((await c.get(item.path)).body) });
    const code = await fx.lastCode();
    const wrong = code === '000000' ? '111111' : '000000';
    const texts: string[] = [];
    let last = null as Awaited<ReturnType<InjectClient['post']>> | null;
    for (let i = 0; i < 3; i++) {
      last = await c.post(`${item.path}/verify`, { _csrf: csrfTokenIn((await c.get(`${item.path}/verify`)).body), code: wrong });
      texts.push(/That code is not right\. You have \d+ tr(?:y|ies) left\./.exec(last.body)?.[0] ?? `${last.statusCode}`);
    }
    expect(texts).toEqual(['That code is not right. You have 2 tries left.', 'That code is not right. You have 1 try left.', '429']);
    expect(last!.body).toContain('This message is locked for now');
    expect(last!.body).toContain('12:15 UTC on 3 December 2026');
    expect(last!.headers['retry-after']).toBe('900');
    // Locked: even the right code is refused, and no new code is sent.
    const right = await c.post(`${item.path}/verify`, { _csrf: csrfTokenIn((await c.get(`${item.path}/verify`)).body), code });
    expect(right.statusCode).toBe(429);
    const sentBefore = fx.queued.length;
    const resend = await c.post(`${item.path}/code`, { _csrf: csrfTokenIn((await c.get(item.path)).body) });
    expect(resend.statusCode).toBe(429);
    expect(fx.queued.length).toBe(sentBefore);
    expect((await c.get(`${item.path}/message`)).statusCode).toBe(401);
    expect(await fx.events(item.id)).toContain('portal-locked (until 2026-12-03T12:15:00.000Z)');
    // After the lock a new code works.
    fx.clock.advance(900_000);
    await verify(c, item);
    expect((await c.get(`${item.path}/message`)).statusCode).toBe(200);
  });

  it('asking for codes is limited per item, per address and per client IP', async () => {
    fx = await startPortal();
    const a = await fx.seal(labMessage());
    const c = fx.client();
    const ask = async (item: Sealed, client = c, ip?: string) => {
      const page = await client.get(item.path);
      return client.request('POST', `${item.path}/code`, { form: { _csrf: csrfTokenIn(page.body) }, headers: { origin: fx.origin, 'sec-fetch-site': 'same-origin', ...(ip ? { 'x-forwarded-for': ip } : {}) } });
    };
    const statuses = [];
    for (let i = 0; i < 6; i++) statuses.push((await ask(a)).statusCode);
    expect(statuses).toEqual([303, 303, 303, 303, 303, 429]);
    expect(fx.queued.length).toBe(5);
    // Other items of the same address share its limit (10 an hour).
    const more = [await fx.seal(labMessage()), await fx.seal(labMessage())];
    const next = [];
    for (let i = 0; i < 6; i++) next.push((await ask(more[i % 2]!)).statusCode);
    expect(next).toEqual([303, 303, 303, 303, 303, 429]);
    // And one IP (every request here comes from inject's 127.0.0.1) gets 30 an hour across addresses.
    let refused = 0;
    for (let i = 0; i < 25; i++) {
      const other = await fx.seal(labMessage(), { recipient: `p${i}@patient.example` });
      if ((await ask(other)).statusCode === 429) refused++;
    }
    expect(fx.queued.length).toBe(30);
    expect(refused).toBe(5);
  });
});

describe('sessions', () => {
  it("one recipient's session opens nothing of another item (IDOR), not even with the other item's id", async () => {
    fx = await startPortal();
    const mine = await fx.seal(labMessage({ subject: 'MINE' }));
    const theirs = await fx.seal(labMessage({ subject: 'THEIRS' }), { recipient: 'kim@patient.example' });
    const sameAddress = await fx.seal(labMessage({ subject: 'ALSO-MINE-OTHER-ITEM' }));
    const c = fx.client();
    await verify(c, mine);
    expect((await c.get(`${mine.path}/message`)).body).toContain('MINE');
    for (const other of [theirs, sameAddress]) {
      for (const path of ['/message', '/attachments/1', '/reply']) {
        const res = await c.get(other.path + path);
        expect(res.statusCode, path).toBe(401);
        expect(res.body).toContain('Confirm your email address first');
        expect(res.body).not.toMatch(/THEIRS|ALSO-MINE/);
      }
    }
    const token = csrfTokenIn((await c.get(`${mine.path}/message`)).body);
    const reply = await c.post(`${theirs.path}/reply`, { _csrf: token, text: 'hello' });
    expect(reply.statusCode).toBe(401);
    expect(fx.queued.filter((q) => q.origin === 'portal-reply')).toEqual([]);
  });

  it('ends after portal.session_idle_seconds without a request, and on sign-out', async () => {
    fx = await startPortal({ portal: { session_idle_seconds: 300 } });
    const item = await fx.seal(labMessage());
    const c = fx.client();
    await verify(c, item);
    fx.clock.advance(299_000);
    const page = await c.get(`${item.path}/message`);
    expect(page.statusCode).toBe(200);
    fx.clock.advance(300_000);
    expect((await c.get(`${item.path}/message`)).statusCode).toBe(401);
    await verify(c, item);
    const open = await c.get(`${item.path}/message`);
    expect((await c.post(`${item.path}/sign-out`, { _csrf: csrfTokenIn(open.body) })).statusCode).toBe(200);
    expect((await c.get(`${item.path}/message`)).statusCode).toBe(401);
  });

  it('a passphrase item asks for the passphrase after the code; the message stays closed until it is right; wrong ones are limited', async () => {
    fx = await startPortal({ portal: { code: { tries: 3 } } });
    const item = await fx.seal(labMessage({ subject: 'SECRET-SUBJECT' }), { passphrase: 'blue tractor 42' });
    const c = fx.client();
    const landing = await c.get(item.path);
    await c.post(`${item.path}/code`, { _csrf: csrfTokenIn(landing.body) });
    const res = await c.post(`${item.path}/verify`, { _csrf: csrfTokenIn((await c.get(`${item.path}/verify`)).body), code: await fx.lastCode() });
    expect(res.headers.location).toBe(`${item.path}/passphrase`);
    const msg = await c.get(`${item.path}/message`);
    expect(msg.statusCode).toBe(401);
    expect(msg.body).not.toContain('SECRET-SUBJECT');
    const form = await c.get(`${item.path}/passphrase`);
    const wrong1 = await c.post(`${item.path}/passphrase`, { _csrf: csrfTokenIn(form.body), passphrase: 'red tractor 42' });
    expect(wrong1.body).toContain('That passphrase is not right. You have 2 tries left.');
    await c.post(`${item.path}/passphrase`, { _csrf: csrfTokenIn(wrong1.body), passphrase: 'nope nope' });
    const third = await c.post(`${item.path}/passphrase`, { _csrf: csrfTokenIn(wrong1.body), passphrase: 'nope nope' });
    expect(third.statusCode).toBe(429);
    const rightButLocked = await c.post(`${item.path}/passphrase`, { _csrf: csrfTokenIn(wrong1.body), passphrase: 'blue tractor 42' });
    expect(rightButLocked.statusCode).toBe(429);
    expect((await c.get(`${item.path}/message`)).statusCode).toBe(401);
    fx.clock.advance(900_000);
    // The session has idled out meanwhile: prove the address again, then the passphrase.
    await c.post(`${item.path}/code`, { _csrf: csrfTokenIn((await c.get(item.path)).body) });
    await c.post(`${item.path}/verify`, { _csrf: csrfTokenIn((await c.get(`${item.path}/verify`)).body), code: await fx.lastCode() });
    const ok = await c.post(`${item.path}/passphrase`, { _csrf: csrfTokenIn((await c.get(`${item.path}/passphrase`)).body), passphrase: 'blue tractor 42' });
    expect(ok.headers.location).toBe(`${item.path}/message`);
    expect((await c.get(`${item.path}/message`)).body).toContain('SECRET-SUBJECT');
  });
});

describe('secure reply', () => {
  async function replyForm(c: InjectClient, item: Sealed) {
    return csrfTokenIn((await c.get(`${item.path}/reply`)).body);
  }
  function multipart(fields: Record<string, string>, files: { name: string; filename: string; type: string; content: Buffer }[] = []) {
    const boundary = `----b${randomBytes(8).toString('hex')}`;
    const parts: Buffer[] = [];
    for (const [k, v] of Object.entries(fields)) parts.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${k}"\r\n\r\n${v}\r\n`));
    for (const f of files) parts.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${f.name}"; filename="${f.filename}"\r\nContent-Type: ${f.type}\r\n\r\n`), f.content, Buffer.from('\r\n'));
    parts.push(Buffer.from(`--${boundary}--\r\n`));
    return { payload: Buffer.concat(parts), contentType: `multipart/form-data; boundary=${boundary}` };
  }
  async function postReply(c: InjectClient, item: Sealed, fields: Record<string, string>, files: Parameters<typeof multipart>[1] = [], headers: Record<string, string> = { origin: fx.origin, 'sec-fetch-site': 'same-origin' }) {
    const body = multipart(fields, files);
    const cookie = [...c.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
    return fx.server.app.inject({ method: 'POST', url: `${item.path}/reply`, headers: { host: `127.0.0.1:${fx.web.port}`, cookie, 'content-type': body.contentType, ...headers }, payload: body.payload });
  }

  it('needs the verified session: without one nothing is queued', async () => {
    fx = await startPortal();
    const item = await fx.seal(labMessage());
    const stranger = fx.client();
    const token = csrfTokenIn((await stranger.get(item.path)).body);
    const res = await postReply(stranger, item, { _csrf: token, text: 'let me in' });
    expect(res.statusCode).toBe(401);
    expect(fx.queued).toEqual([]);
    expect(await fx.events(item.id)).not.toContain('portal-replied');
  });

  it('needs the CSRF token of the session: a forged form (no token, another token, another site) is refused and nothing is queued', async () => {
    fx = await startPortal();
    const item = await fx.seal(labMessage());
    const c = fx.client();
    await verify(c, item);
    const stranger = fx.client();
    const foreignToken = csrfTokenIn((await stranger.get(item.path)).body);
    for (const [fields, headers] of [
      [{ text: 'forged' }, undefined],
      [{ _csrf: foreignToken, text: 'forged' }, undefined],
      [{ _csrf: await replyForm(c, item), text: 'forged' }, { origin: 'https://evil.example', 'sec-fetch-site': 'cross-site' }],
    ] as const) {
      const res = await postReply(c, item, fields as Record<string, string>, [], headers as Record<string, string> | undefined);
      expect(res.statusCode).toBe(403);
      expect(res.body).toContain('This form can no longer be sent');
    }
    expect(fx.queued.filter((q) => q.origin === 'portal-reply')).toEqual([]);
    // The real form, from the session's own page, is sent.
    const ok = await postReply(c, item, { _csrf: await replyForm(c, item), text: 'Thank you' });
    expect(ok.statusCode).toBe(200);
    expect(fx.queued.filter((q) => q.origin === 'portal-reply')).toHaveLength(1);
  });

  it('goes to the sender (reply-all: to the others named too), threaded, from the verified recipient, with its attachments; over the limit it is refused with the text kept', async () => {
    fx = await startPortal({ portal: { reply_max_bytes: 4096 } });
    const item = await fx.seal(labMessage({ cc: 'Dr Who <dr@clinic.example>, Pat <pat@patient.example>' }));
    const c = fx.client();
    await verify(c, item);
    const file = randomBytes(1000);
    const res = await postReply(c, item, { _csrf: await replyForm(c, item), text: 'Thanks, see attached.', replyAll: '1' }, [{ name: 'files', filename: 'scan.png', type: 'image/png', content: file }]);
    expect(res.statusCode).toBe(200);
    expect(res.body).toContain('Your reply was sent');
    const queued = fx.queued.find((q) => q.origin === 'portal-reply')!;
    expect(queued.recipients).toEqual(['lab@clinic.example', 'dr@clinic.example']);
    expect(queued.sender).toBe('portal@relay.test');
    const body = await fx.body(queued.queueId);
    expect(body).toMatch(/^From: pat@patient\.example\r$/m);
    expect(body).toMatch(/^Sender: portal@relay\.test\r$/m);
    expect(body).toMatch(/^In-Reply-To: <orig@clinic\.example>\r$/m);
    expect(body).toMatch(/^References: <orig@clinic\.example>\r$/m);
    expect(body).toMatch(/^Subject: Re: Your results\r$/m);
    expect(body).toContain(file.toString('base64').slice(0, 60));
    expect(await fx.events(item.id)).toContain('portal-replied (1 attachment(s), reply to all)');

    const big = await postReply(c, item, { _csrf: await replyForm(c, item), text: 'KEEP-THIS-TEXT' }, [{ name: 'files', filename: 'big.bin', type: 'application/octet-stream', content: randomBytes(5000) }]);
    expect(big.statusCode).toBe(413);
    expect(big.body).toContain('Your reply is too large to send');
    expect(big.body).toContain('KEEP-THIS-TEXT');
    expect(fx.queued.filter((q) => q.origin === 'portal-reply')).toHaveLength(1);
  });
});

describe('attachments', () => {
  it('download as attachments with nosniff and a safe type: an HTML or SVG file is never served as a page or image of ours', async () => {
    fx = await startPortal();
    const c = fx.client();
    for (const [type, name, served] of [
      ['text/html', 'page.html', 'application/octet-stream'],
      ['image/svg+xml', 'x.svg', 'application/octet-stream'],
      ['application/pdf', 'r.pdf', 'application/pdf'],
    ] as const) {
      const mime = labMessage({ attachmentName: name, attachment: Buffer.from('<script>alert(1)</script>') }).replace('Content-Type: application/pdf', `Content-Type: ${type}`);
      const item = await fx.seal(mime);
      await verify(c, item);
      const res = await c.get(`${item.path}/attachments/1`);
      expect(res.statusCode).toBe(200);
      expect(res.headers['content-type']).toBe(served);
      expect(res.headers['content-disposition']).toBe(`attachment; filename="${name}"; filename*=UTF-8''${name}`);
      expect(res.headers['x-content-type-options']).toBe('nosniff');
      expect(res.rawPayload.toString()).toBe('<script>alert(1)</script>');
      expect(await fx.events(item.id)).toContain('portal-downloaded (attachment 1)');
    }
  });
});
