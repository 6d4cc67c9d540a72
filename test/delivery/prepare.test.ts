import { describe, expect, it } from 'vitest';
import { prepareForDelivery } from '../../src/delivery/prepare.ts';

const policy = { stripSubjectTag: '[secure]', modeHeader: 'X-SealRelay-Mode' };
const msg = (head: string, body = 'Body [secure] stays\r\n') => Buffer.from(`${head}\r\n\r\n${body}`);

describe('prepareForDelivery', () => {
  it.each([
    ['Subject: [secure] Lab results', 'Subject: Lab results'],
    ['Subject: Lab results [SECURE]', 'Subject: Lab results'],
    ['subject: Re: [Secure]  your bill', 'subject: Re: your bill'],
    ['Subject: Lab\r\n [secure] results', 'Subject: Lab\r\n results'],
  ])('cuts the tag: %j', (subject, expected) => {
    const out = prepareForDelivery(msg(`From: a@b.test\r\n${subject}\r\nTo: c@d.test`), policy).toString();
    expect(out).toBe(`From: a@b.test\r\n${expected}\r\nTo: c@d.test\r\n\r\nBody [secure] stays\r\n`);
  });

  it('removes the mode header, folded lines included, and leaves the body alone', () => {
    const out = prepareForDelivery(msg('From: a@b.test\r\nX-SealRelay-Mode: forced\r\n  (folded)\r\nSubject: hi'), policy).toString();
    expect(out).toBe('From: a@b.test\r\nSubject: hi\r\n\r\nBody [secure] stays\r\n');
  });

  it('returns the same buffer when there is nothing to change', () => {
    const m = msg('From: a@b.test\r\nSubject: hello');
    expect(prepareForDelivery(m, policy)).toBe(m);
    expect(prepareForDelivery(m, { stripSubjectTag: null, modeHeader: null })).toBe(m);
  });
});
