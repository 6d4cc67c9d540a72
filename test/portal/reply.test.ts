// The messages the portal makes for the queue: the secure reply (src/portal/reply.ts:
// to whom, threading, From/Sender, size limit, origin) and the code email
// (src/portal/code-email.ts: the code and its lifetime, never the message's subject,
// body or attachment names).
import { simpleParser } from 'mailparser';
import { describe, expect, it } from 'vitest';
import { buildCodeEmail, lifetimeText, portalFromAddress } from '../../src/portal/code-email.ts';
import { buildReply, ReplyTooLarge, replyRecipients, type ReplyInput } from '../../src/portal/reply.ts';
import { contentDisposition } from '../../src/http/portal/reading.ts';

const original: ReplyInput['original'] = {
  from: { name: 'Lab', address: 'noreply@clinic.example' },
  replyTo: [{ name: 'Results desk', address: 'results@clinic.example' }],
  to: [{ name: 'Pat', address: 'PAT@patient.example' }, { name: 'Kim', address: 'kim@patient.example' }],
  cc: [{ name: 'Dr', address: 'dr@clinic.example' }, { name: '', address: 'not an address' }],
  subject: 'Your results',
  messageId: '<m1@clinic.example>',
  references: ['<m0@clinic.example>'],
};
const input = (over: Partial<ReplyInput> = {}): ReplyInput => ({
  original,
  item: { sender: 'bounce@clinic.example', recipient: 'pat@patient.example', messageId: '<m1@clinic.example>' },
  text: 'Thank you',
  files: [],
  replyAll: false,
  portalFrom: 'portal@relay.test',
  hostname: 'relay.test',
  maxBytes: 10_000,
  clientIp: '192.0.2.7',
  now: Date.parse('2026-12-03T12:00:00Z'),
  ...over,
});

describe('buildReply', () => {
  it('goes to Reply-To (else From, else the envelope sender); reply-all adds To and Cc without the replier or junk', () => {
    expect(replyRecipients(input())).toEqual(['results@clinic.example']);
    expect(replyRecipients(input({ original: { ...original, replyTo: [] } }))).toEqual(['noreply@clinic.example']);
    expect(replyRecipients(input({ original: { ...original, replyTo: [], from: null } }))).toEqual(['bounce@clinic.example']);
    expect(replyRecipients(input({ replyAll: true }))).toEqual(['results@clinic.example', 'kim@patient.example', 'dr@clinic.example']);
  });

  it('is a portal-reply from the verified recipient, sent by the portal, threaded, with its attachments', async () => {
    const m = await buildReply(input({ replyAll: true, files: [{ filename: 'scan.png', contentType: 'image/png', content: Buffer.from('PNGDATA') }] }));
    expect(m.origin).toBe('portal-reply');
    expect(m.sender).toBe('portal@relay.test');
    expect(m.recipients).toEqual(['results@clinic.example', 'kim@patient.example', 'dr@clinic.example']);
    expect(m.clientIp).toBe('192.0.2.7');
    const text = m.body.toString('latin1');
    expect(text).not.toMatch(/[^\r]\n/);
    const parsed = await simpleParser(m.body);
    expect(parsed.from?.value[0]?.address).toBe('pat@patient.example');
    expect(parsed.headers.get('sender')).toMatchObject({ value: [{ address: 'portal@relay.test' }] });
    expect((parsed.to as { value: { address: string }[] }).value.map((a) => a.address)).toEqual(['results@clinic.example']);
    expect((parsed.cc as { value: { address: string }[] }).value.map((a) => a.address)).toEqual(['kim@patient.example', 'dr@clinic.example']);
    expect(parsed.inReplyTo).toBe('<m1@clinic.example>');
    expect(parsed.references).toEqual(['<m0@clinic.example>', '<m1@clinic.example>']);
    expect(parsed.subject).toBe('Re: Your results');
    expect(parsed.messageId).toBe(m.messageId);
    expect(parsed.attachments.map((a) => [a.filename, a.content.toString()])).toEqual([['scan.png', 'PNGDATA']]);
  });

  it('refuses more than maxBytes of text and files together', async () => {
    await expect(buildReply(input({ maxBytes: 100, text: 'x'.repeat(60), files: [{ filename: 'a', contentType: 'text/plain', content: Buffer.alloc(41) }] }))).rejects.toBeInstanceOf(ReplyTooLarge);
    await expect(buildReply(input({ maxBytes: 100, text: 'x'.repeat(60), files: [{ filename: 'a', contentType: 'text/plain', content: Buffer.alloc(40) }] }))).resolves.toBeTruthy();
  });
});

describe('buildCodeEmail', () => {
  it('carries the code and its lifetime in text and HTML, from the portal, and nothing of the message', async () => {
    const m = await buildCodeEmail({ to: 'pat@patient.example', code: '042917', lifetimeSeconds: 600, from: 'portal@relay.test', organisation: 'Clinic <Example>', hostname: 'relay.test', now: Date.now() });
    expect(m.origin).toBe('portal-code');
    expect(m.sender).toBe('portal@relay.test');
    expect(m.recipients).toEqual(['pat@patient.example']);
    const parsed = await simpleParser(m.body);
    expect(parsed.text).toContain('Your code is: 042917');
    expect(parsed.text).toContain('It works for 10 minutes');
    expect(parsed.html).toContain('042917');
    expect(parsed.html).toContain('Clinic &#60;Example&#62;');
    expect(parsed.headers.get('auto-submitted')).toBe('auto-generated');
    expect(parsed.subject).toBe('Your code to open a secure message');
  });

  it('is from portal.from, else portal@<server.hostname>; lifetimes read naturally', () => {
    expect(portalFromAddress({ portal: { from: null }, server: { hostname: 'relay.test' } })).toBe('portal@relay.test');
    expect(portalFromAddress({ portal: { from: 'secure@clinic.example' }, server: { hostname: 'relay.test' } })).toBe('secure@clinic.example');
    expect([lifetimeText(600), lifetimeText(3600), lifetimeText(60), lifetimeText(90)]).toEqual(['10 minutes', '1 hour', '1 minute', '90 seconds']);
  });
});

describe('contentDisposition (RFC 6266)', () => {
  it('gives an ASCII fallback and the exact UTF-8 name', () => {
    expect(contentDisposition('Résultats 2026.pdf')).toBe(`attachment; filename="R_sultats 2026.pdf"; filename*=UTF-8''R%C3%A9sultats%202026.pdf`);
    expect(contentDisposition('a"b\\c%.txt')).toBe(`attachment; filename="a_b_c_.txt"; filename*=UTF-8''a%22b%5Cc%25.txt`);
  });
});
