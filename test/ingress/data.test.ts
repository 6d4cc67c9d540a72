// DATA: the message is committed before "250 2.0.0 Ok: queued as <id>", a failed
// commit is a 451 the client can retry, and what is queued carries our Received
// header with the inbound TLS facts read from the live socket.
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import { describe, expect, test, vi } from 'vitest';
import { ingressConfig, message, plain, RawClient, runSteps, startTestIngress, testUsers, type Step } from './harness.ts';
import { queueRows, startSqliteIngress } from './real-store.ts';

const EHLO: Step = ['EHLO app.clinic.test', 250];
const unfold = (s: string) => s.replace(/\r\n[ \t]/g, ' ');

async function withIngress<T>(opts: Parameters<typeof startTestIngress>[0], fn: (t: Awaited<ReturnType<typeof startTestIngress>>) => Promise<T>): Promise<T> {
  const t = await startTestIngress(opts);
  try {
    return await fn(t);
  } finally {
    await t.close();
  }
}

async function toData(c: RawClient, from = 'app@clinic.test', to = ['patient@example.test']): Promise<void> {
  await runSteps(c, [[`MAIL FROM:<${from}>`, 250], ...to.map((r): Step => [`RCPT TO:<${r}>`, 250]), ['DATA', 354]]);
}

describe('durable before 250', () => {
  test('the 250 names the queue id and is sent only after enqueue resolved', () =>
    withIngress({}, async (t) => {
      const c = await RawClient.open(t.port());
      await runSteps(c, [EHLO]);
      await toData(c);
      t.store.hold();
      c.write(message() + '.\r\n');
      // the commit is held: no reply may arrive
      expect(await c.repliesWithin(300)).toEqual([]);
      expect(t.store.events).toHaveLength(1);
      expect(t.store.events[0]).toMatch(/^enqueue-start /);
      t.store.release();
      const reply = await c.reply();
      expect(reply.code).toBe(250);
      const id = t.store.messages[0]!.queueId;
      expect(reply.text).toBe(`2.0.0 Ok: queued as ${id}`);
      expect(t.store.events).toEqual([`enqueue-start ${id}`, `enqueue-committed ${id}`, `onQueued ${id}`]);
      c.destroy();
    }));

  test('enqueue failure → 451 4.3.0, logged store.error; the client retries in the same session and gets 250', () =>
    withIngress({}, async (t) => {
      t.store.failNext = 1;
      const c = await RawClient.open(t.port());
      await runSteps(c, [EHLO]);
      await toData(c);
      c.write(message() + '.\r\n');
      const failed = await c.reply();
      expect(failed.code).toBe(451);
      expect(failed.text).toMatch(/^4\.3\.0 /);
      expect(t.store.messages).toHaveLength(0);
      expect(t.logs.find((l) => l.event === 'store.error')).toMatchObject({ err: 'disk full (simulated)', ip: '127.0.0.1' });
      // the transaction was reset; the same message again
      await toData(c);
      c.write(message() + '.\r\n');
      const ok = await c.reply();
      expect(ok.code).toBe(250);
      expect(t.store.messages).toHaveLength(1);
      expect(ok.text).toContain(t.store.messages[0]!.queueId);
      // the failed attempt's id was never acknowledged, nor handed to onQueued
      expect(t.store.events.filter((e) => e.startsWith('onQueued'))).toEqual([`onQueued ${t.store.messages[0]!.queueId}`]);
      c.destroy();
    }));

  test('on the real store (SQLite in its own thread): a commit that fails is a 451, never a 250, and leaves no row; the next message is queued whole', async () => {
    const t = await startSqliteIngress({ refuseSender: 'refused@clinic.test' });
    try {
      const c = await RawClient.open(t.port());
      await runSteps(c, [EHLO]);
      // A small message, and a large one whose parts are written to the store while it arrives.
      const large = `From: refused@clinic.test\r\nSubject: large\r\n\r\n${`${'0123456789abcdef'.repeat(4)}\r\n`.repeat(50_000)}`;
      for (const body of [message('refused'), large]) {
        await toData(c, 'refused@clinic.test', ['pat@example.test', 'lee@example.test']);
        c.write(body + '.\r\n');
        const refused = await c.reply(30_000);
        expect(refused.code).toBe(451);
        // Nothing of it is left in any table; and it was the commit itself that failed (the trigger).
        const { all } = queueRows(t.path);
        expect(Object.keys(all)).toEqual(expect.arrayContaining(['messages', 'recipients']));
        expect(all).toEqual(Object.fromEntries(Object.keys(all).map((table) => [table, 0])));
        expect(t.logs.filter((l) => l.event === 'store.error').at(-1)?.err).toMatch(/commit refused by the test trigger/);
      }
      // The same session goes on: the next message is committed whole before its 250.
      await toData(c, 'app@clinic.test', ['pat@example.test', 'lee@example.test']);
      c.write(message('kept') + '.\r\n');
      const ok = await c.reply();
      expect(ok.code).toBe(250);
      const id = /queued as (\S+)$/.exec(ok.text)?.[1] ?? '';
      const rows = queueRows(t.path, id);
      expect(rows.of).toEqual(rows.all);
      expect(rows.of).toMatchObject({ messages: 1, recipients: 2 });
      const entry = await t.store.getQueueEntry(id);
      expect(entry?.recipients.map((r) => [r.recipient, r.state])).toEqual([['pat@example.test', 'queued'], ['lee@example.test', 'queued']]);
      const body = (await t.store.readBody(id))?.toString('latin1') ?? '';
      expect(body).toMatch(new RegExp(`^Received: [^]*? id ${id}\\b`));
      expect(body).toContain('Subject: kept\r\n');
      expect(body.endsWith('\r\nbody line\r\n')).toBe(true);
      c.destroy();
    } finally {
      await t.close();
    }
  }, 60_000);

  test('a client that goes away in the middle of DATA queues nothing', () =>
    withIngress({}, async (t) => {
      const c = await RawClient.open(t.port());
      await runSteps(c, [EHLO]);
      await toData(c);
      c.write('Subject: cut\r\n\r\nhalf a mess');
      c.destroy();
      // Until ingress has settled that DATA one way or the other: it saw the client go, or it went to the store.
      const lost = () => t.logs.find((l) => l.event === 'ingress.rejected' && l.reason === 'connection_lost');
      await vi.waitFor(() => expect(lost() !== undefined || t.store.events.length > 0).toBe(true), { timeout: 5000, interval: 20 });
      expect(t.store.events).toEqual([]);
      expect(lost()).toBeDefined();
      // and the server is fine
      const d = await RawClient.open(t.port());
      await runSteps(d, [EHLO]);
      d.destroy();
    }));
});

describe('what is queued', () => {
  test('STARTTLS + AUTH: envelope, user, IP, Message-ID added, Received with the live TLS facts (RFC 3848 ESMTPSA)', async () =>
    withIngress(
      { config: ingressConfig({ relay_networks: [] }), users: await testUsers({ app1: { password: 'pw' } }) },
      async (t) => {
        const c = await RawClient.open(t.port());
        await runSteps(c, [EHLO]);
        await c.starttls();
        await runSteps(c, [EHLO, [plain('app1', 'pw'), 235]]);
        const protocol = c.tlsSocket!.getProtocol();
        const cipher = c.tlsSocket!.getCipher().name;
        await toData(c, 'app@clinic.test', ['patient@example.test']);
        c.write(message('Lab results') + '.\r\n');
        expect((await c.reply()).code).toBe(250);
        const m = t.store.messages[0]!;
        expect(m).toMatchObject({ sender: 'app@clinic.test', recipients: ['patient@example.test'], clientIp: '127.0.0.1', authUser: 'app1', subject: 'Lab results' });
        expect(Math.abs(m.receivedAt - Date.now())).toBeLessThan(5000);
        const text = m.body.toString();
        const received = unfold(text.slice(0, text.indexOf('\r\nFrom:') + 2));
        expect(protocol).toBe('TLSv1.3');
        expect(received).toMatch(
          new RegExp(
            `^Received: from app\\.clinic\\.test \\((\\S+ )?\\[127\\.0\\.0\\.1\\]\\) by relay\\.ingress\\.test \\(SealRelay\\) with ESMTPSA id ${m.queueId} ` +
              `\\(version=TLSv1\\.3 cipher=${cipher} bits=256 verify=NO\\) for <patient@example\\.test>; \\w{3}, \\d{2} \\w{3} \\d{4} \\d{2}:\\d{2}:\\d{2} \\+0000\\r\\n$`,
          ),
        );
        expect(m.messageId).toMatch(new RegExp(`^<${m.queueId}\\.\\d+@relay\\.ingress\\.test>$`));
        expect(text).toContain(`Subject: Lab results\r\nMessage-ID: ${m.messageId}\r\n\r\nbody line\r\n`);
        c.destroy();
      },
    ));

  test('TLS 1.2: version and OpenSSL cipher name as negotiated', () =>
    withIngress({}, async (t) => {
      const c = await RawClient.open(t.port());
      await runSteps(c, [EHLO]);
      await c.starttls({ maxVersion: 'TLSv1.2' });
      await runSteps(c, [EHLO]);
      const cipher = c.tlsSocket!.getCipher().name;
      await toData(c);
      c.write(message() + '.\r\n');
      expect((await c.reply()).code).toBe(250);
      const head = unfold(t.store.messages[0]!.body.toString());
      expect(head).toContain(`with ESMTPS id ${t.store.messages[0]!.queueId} (version=TLSv1.2 cipher=${cipher} bits=`);
      expect(cipher).toMatch(/^ECDHE-/);
      c.destroy();
    }));

  test('implicit TLS: ESMTPS with TLS facts', () =>
    withIngress({ config: ingressConfig({ listeners: { smtps: { host: '127.0.0.1', port: 0, tls: 'implicit' } } }) }, async (t) => {
      const c = await RawClient.open(t.port(), { implicitTls: true });
      await runSteps(c, [EHLO]);
      await toData(c);
      c.write(message() + '.\r\n');
      expect((await c.reply()).code).toBe(250);
      expect(unfold(t.store.messages[0]!.body.toString())).toMatch(/with ESMTPS id \S+ \(version=TLSv1\.3 cipher=TLS_\w+ bits=\d+ verify=NO\)/);
      c.destroy();
    }));

  test('plaintext from relay_networks, two recipients, HELO: "with SMTP", no TLS comment, no "for"', () =>
    withIngress({}, async (t) => {
      const c = await RawClient.open(t.port());
      await runSteps(c, [['HELO app.clinic.test', 250]]);
      await toData(c, 'app@clinic.test', ['a@example.test', 'b@example.test']);
      c.write(message() + '.\r\n');
      expect((await c.reply()).code).toBe(250);
      const received = unfold(t.store.messages[0]!.body.toString().split('\r\nFrom:')[0]!);
      expect(received).toMatch(/ with SMTP id \S+; \w{3}, /);
      expect(received).not.toContain('version=');
      expect(received).not.toContain(' for ');
      c.destroy();
    }));

  test('null sender, existing Message-ID kept, dot-stuffing undone, two messages in one session get two ids', () =>
    withIngress({}, async (t) => {
      const c = await RawClient.open(t.port());
      await runSteps(c, [EHLO]);
      await toData(c, '');
      // ".hidden" is sent dot-stuffed as "..hidden" (RFC 5321 §4.5.2)
      c.write('Message-ID: <orig@app.test>\r\nSubject: one\r\n\r\n..hidden\r\n.\r\n');
      expect((await c.reply()).code).toBe(250);
      await toData(c);
      c.write(message('two') + '.\r\n');
      expect((await c.reply()).code).toBe(250);
      const [one, two] = t.store.messages;
      expect(one).toMatchObject({ sender: '', messageId: '<orig@app.test>', subject: 'one', authUser: null });
      expect(one!.body.toString()).toMatch(/\r\nMessage-ID: <orig@app\.test>\r\nSubject: one\r\n\r\n\.hidden\r\n$/);
      expect(one!.body.toString().match(/Message-ID/g)).toHaveLength(1);
      expect(two!.queueId).not.toBe(one!.queueId);
      c.destroy();
    }));
});

describe('logging', () => {
  test('ingress.queued carries id, size, recipients, user, ip, commit time; never the body; no subject by default', () =>
    withIngress({}, async (t) => {
      const c = await RawClient.open(t.port());
      await runSteps(c, [EHLO]);
      await toData(c);
      c.write('Subject: Diagnosis for J. Doe\r\n\r\nsecret body text\r\n.\r\n');
      expect((await c.reply()).code).toBe(250);
      const m = t.store.messages[0]!;
      const queued = t.logs.find((l) => l.event === 'ingress.queued');
      expect(queued).toMatchObject({ queueId: m.queueId, size: m.body.length, recipients: 1, user: null, ip: '127.0.0.1', listener: 'submission' });
      expect(queued?.commitMs).toBeTypeOf('number');
      expect(queued?.commitMs).toBeGreaterThanOrEqual(0);
      const all = t.rawLogs.join('\n');
      expect(all).not.toContain('secret body text');
      expect(all).not.toContain('Diagnosis');
      c.destroy();
    }));

  test('with logging.log_subjects the subject is logged', () =>
    withIngress({ config: ingressConfig({}, { logging: { level: 'debug', log_subjects: true } }) }, async (t) => {
      const c = await RawClient.open(t.port());
      await runSteps(c, [EHLO]);
      await toData(c);
      c.write('Subject: Appointment\r\n\r\nx\r\n.\r\n');
      expect((await c.reply()).code).toBe(250);
      expect(t.logs.find((l) => l.event === 'ingress.queued')?.subject).toBe('Appointment');
      c.destroy();
    }));
});

describe("nodemailer's SMTP client (what applications use)", () => {
  test('STARTTLS, AUTH PLAIN, send: the response carries the queue id', async () =>
    withIngress({ config: ingressConfig({ relay_networks: [] }), users: await testUsers({ app1: { password: 'pw' } }) }, async (t) => {
      const conn = new SMTPConnection({ host: '127.0.0.1', port: t.port(), requireTLS: true, tls: { rejectUnauthorized: false }, name: 'app.clinic.test' });
      await new Promise<void>((resolve, reject) => {
        conn.once('error', reject);
        conn.connect(() => resolve());
      });
      await new Promise<void>((resolve, reject) => conn.login({ user: 'app1', pass: 'pw' }, (err) => (err ? reject(err) : resolve())));
      const info = await new Promise<{ response: string; accepted: unknown[] }>((resolve, reject) =>
        conn.send({ from: 'app@clinic.test', to: ['a@example.test', 'b@example.test'] }, message('via nodemailer'), (err, i) => (err ? reject(err) : resolve(i as never))),
      );
      conn.quit();
      expect(info.accepted).toEqual(['a@example.test', 'b@example.test']);
      expect(info.response).toBe(`250 2.0.0 Ok: queued as ${t.store.messages[0]!.queueId}`);
      expect(t.store.messages[0]).toMatchObject({ authUser: 'app1', subject: 'via nodemailer' });
    }));
});
