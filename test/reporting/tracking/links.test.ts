// Signed tracking links (src/reporting/tracking/links.ts): a token verifies only
// whole, with the key that made it and for the kind it was made for; any change —
// one character of the MAC, the URL, the seq, the kind — and it is no link at all,
// so the redirector can only ever send a browser where a signed link says.
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { isTrackableUrl, LinkSigner, linkUrl, MAX_TARGET_URL, MAX_TOKEN } from '../../../src/reporting/tracking/links.ts';

const signer = new LinkSigner(randomBytes(32));
const flip = (s: string, i: number) => s.slice(0, i) + (s[i] === 'A' ? 'B' : 'A') + s.slice(i + 1);

describe('tracking links', () => {
  it('round-trip each kind, naming the recipient by queue id and seq only', () => {
    for (const kind of ['open', 'unsubscribe'] as const) {
      const token = signer.token({ kind, queueId: 'Q1x2', seq: 3 });
      expect(signer.verify(token)).toEqual({ kind, queueId: 'Q1x2', seq: 3 });
    }
    const url = 'https://clinic.example/news?id=1&x=%20y#top';
    const token = signer.token({ kind: 'click', queueId: 'Q1x2', seq: 0, url });
    expect(signer.verify(token)).toEqual({ kind: 'click', queueId: 'Q1x2', seq: 0, url });
    expect(token).toMatch(/^[A-Za-z0-9._-]+$/);
    expect(token).not.toContain('clinic.example');
    expect(linkUrl('https://relay.example/', signer, { kind: 'open', queueId: 'Q', seq: 0 })).toMatch(/^https:\/\/relay\.example\/t\/o\/o\.Q\.0\.[A-Za-z0-9_-]{22}$/);
  });

  it('carry a MAC of at least 128 bits', () => {
    const mac = signer.token({ kind: 'open', queueId: 'Q', seq: 0 }).split('.').pop()!;
    expect(Buffer.from(mac, 'base64url').length).toBeGreaterThanOrEqual(16);
  });

  it('refuse every changed, truncated, re-kinded or foreign token', () => {
    const click = signer.token({ kind: 'click', queueId: 'Q1', seq: 0, url: 'https://clinic.example/a' });
    const parts = click.split('.');
    const evil = Buffer.from('https://evil.example/').toString('base64url');
    const variants = [
      flip(click, click.length - 1),
      flip(click, click.length - 5),
      click.slice(0, -1),
      [parts[0], parts[1], parts[2], evil, parts[4]].join('.'),
      [parts[0], parts[1], '1', parts[3], parts[4]].join('.'),
      ['o', parts[1], parts[2], parts[4]].join('.'),
      ['u', ...parts.slice(1)].join('.'),
      [parts[0], parts[1], parts[2], parts[4]].join('.'),
      new LinkSigner(randomBytes(32)).token({ kind: 'click', queueId: 'Q1', seq: 0, url: 'https://clinic.example/a' }),
      '',
      '....',
      'x'.repeat(MAX_TOKEN + 1),
      `${click}.`,
      click.replace('.', '..'),
    ];
    for (const v of variants) expect(signer.verify(v), v.slice(0, 80)).toBeNull();
  });

  it('sign only absolute http(s) URLs of printable ASCII and bounded length', () => {
    for (const good of ['http://a.example', 'https://a.example/p?q=1']) expect(isTrackableUrl(good)).toBe(true);
    for (const bad of ['javascript:alert(1)', 'mailto:a@b.example', 'data:text/html,x', '//evil.example', '/relative', 'https://', 'https://a.example/é', 'https://a.example/ x', `https://a.example/${'a'.repeat(MAX_TARGET_URL)}`]) {
      expect(isTrackableUrl(bad), bad.slice(0, 60)).toBe(false);
      expect(() => signer.token({ kind: 'click', queueId: 'Q', seq: 0, url: bad })).toThrow(TypeError);
    }
    expect(() => signer.token({ kind: 'open', queueId: 'Q.1', seq: 0 })).toThrow(TypeError);
    expect(() => new LinkSigner(randomBytes(16))).toThrow(RangeError);
  });
});
