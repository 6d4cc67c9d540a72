// MTA-STS discovery (RFC 8461) against the loopback world: TXT records from the DNS
// stub, policies over HTTPS from a test-CA policy server on port 0.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  checkMx,
  fetchMtaStsPolicy,
  MAX_AGE_LIMIT_S,
  mxMatches,
  parsePolicyText,
  parseStsRecord,
  POLICY_MAX_BYTES,
  type MtaStsFetchOptions,
} from '../../src/domains/mta-sts.ts';
import { createMemoryPolicyCache, createMtaStsCache, type MtaStsCacheOptions } from '../../src/domains/mta-sts-cache.ts';
import { startDnsStub, type DnsStub } from '../helpers/dns-stub.ts';
import { policyText, startPolicyServer, type PolicyResponse, type PolicyServer } from '../helpers/https-policy-server.ts';

let dnsStub: DnsStub;
let server: PolicyServer;
let serial = 0;

beforeAll(async () => {
  dnsStub = await startDnsStub();
  server = await startPolicyServer();
});

afterAll(async () => {
  await Promise.all([dnsStub?.close(), server?.close()]);
});

/** A domain of its own for each test, so counts and records never mix. */
function freshDomain(label: string): string {
  return `${label}-${++serial}.sts.invalid`;
}

function fetchOpts(extra: Partial<MtaStsFetchOptions> = {}): MtaStsFetchOptions {
  return { dnsServers: [dnsStub.server], timeoutMs: 2000, ca: server.caPem, port: server.port, resolveHost: () => '127.0.0.1', ...extra };
}

function publishTxt(domain: string, id: string): void {
  dnsStub.set(`_mta-sts.${domain}`, 'TXT', [`v=STSv1; id=${id};`]);
}

/** TXT record with `id` and the policy (text or a PolicyResponse) on the HTTPS server. */
function publish(domain: string, id: string, response: string | PolicyResponse): void {
  publishTxt(domain, id);
  server.set(domain, response);
}

const ENFORCE = policyText({ mode: 'enforce', mx: ['mx1.example.invalid', '*.mail.example.invalid'], maxAge: 86400 });

describe('fetchMtaStsPolicy (RFC 8461 §3)', () => {
  it('fetches an enforce policy with several mx patterns', async () => {
    const domain = freshDomain('enforce');
    publish(domain, '20260101T000000', ENFORCE);
    const before = Date.now();
    const result = await fetchMtaStsPolicy(domain, fetchOpts());
    expect(result).toMatchObject({
      kind: 'policy',
      id: '20260101T000000',
      mode: 'enforce',
      mx: ['mx1.example.invalid', '*.mail.example.invalid'],
      maxAge: 86400,
    });
    expect(result.kind === 'policy' && result.fetchedAt).toBeGreaterThanOrEqual(before);
    expect(server.requests(domain)).toBe(1);
  });

  it('fetches a testing policy, resolving mta-sts.<domain> through DNS when no resolveHost is given', async () => {
    const domain = freshDomain('testing');
    publish(domain, 'abc123', policyText({ mode: 'testing', mx: ['MX.Example.Invalid.'], maxAge: 604800 }));
    dnsStub.set(`mta-sts.${domain}`, 'A', ['127.0.0.1']);
    const result = await fetchMtaStsPolicy(domain, fetchOpts({ resolveHost: undefined }));
    // Patterns are kept lower case and without the trailing dot.
    expect(result).toMatchObject({ kind: 'policy', id: 'abc123', mode: 'testing', mx: ['mx.example.invalid'], maxAge: 604800 });
  });

  it('reads a TXT record split into several strings as one (§3.1) and skips non-STS records', async () => {
    const domain = freshDomain('split');
    dnsStub.set(`_mta-sts.${domain}`, 'TXT', ['some-verification=xyz', ['v=STSv1; ', 'id=split1;']]);
    server.set(domain, ENFORCE);
    expect(await fetchMtaStsPolicy(domain, fetchOpts())).toMatchObject({ kind: 'policy', id: 'split1' });
  });

  it('no TXT record: no policy, and no HTTPS request', async () => {
    const domain = freshDomain('absent');
    server.set(domain, ENFORCE);
    expect(await fetchMtaStsPolicy(domain, fetchOpts())).toMatchObject({ kind: 'none', invalid: false });
    expect(server.requests(domain)).toBe(0);
  });

  it('two v=STSv1 records: no policy (§3.1), and no HTTPS request', async () => {
    const domain = freshDomain('two');
    dnsStub.set(`_mta-sts.${domain}`, 'TXT', ['v=STSv1; id=one;', 'v=STSv1; id=two;']);
    server.set(domain, ENFORCE);
    const result = await fetchMtaStsPolicy(domain, fetchOpts());
    expect(result).toMatchObject({ kind: 'none', invalid: true });
    expect(result.kind === 'none' && result.reason).toMatch(/2 v=STSv1 TXT records/);
    expect(server.requests(domain)).toBe(0);
  });

  it('an invalid TXT record: no policy', async () => {
    const domain = freshDomain('badtxt');
    dnsStub.set(`_mta-sts.${domain}`, 'TXT', ['v=STSv1; id=not-alphanumeric!;']);
    expect(await fetchMtaStsPolicy(domain, fetchOpts())).toMatchObject({ kind: 'none', invalid: true });
  });

  it('a TXT lookup that fails (SERVFAIL) is a temporary error', async () => {
    const domain = freshDomain('servfail');
    dnsStub.set(`_mta-sts.${domain}`, 'failure', 'SERVFAIL');
    expect(await fetchMtaStsPolicy(domain, fetchOpts())).toMatchObject({ kind: 'error', temporary: true, reason: expect.stringMatching(/TXT lookup/) });
  });

  it('a policy host without an address is an error', async () => {
    const domain = freshDomain('noaddr');
    publish(domain, 'id1', ENFORCE);
    expect(await fetchMtaStsPolicy(domain, fetchOpts({ resolveHost: undefined }))).toMatchObject({
      kind: 'error',
      temporary: false,
      reason: expect.stringMatching(/has no address/),
    });
  });

  // Every way the HTTPS fetch must fail (§3.3), with whether it may pass by itself.
  const failures: Array<{ name: string; response: PolicyResponse; opts?: Partial<MtaStsFetchOptions>; reason: RegExp; temporary: boolean }> = [
    { name: '404', response: { status: 404, body: 'nope' }, reason: /HTTP 404/, temporary: false },
    { name: '500', response: { status: 500, body: 'oops' }, reason: /HTTP 500/, temporary: true },
    {
      name: 'a redirect (never followed)',
      response: { status: 301, location: 'https://mta-sts.elsewhere.invalid/.well-known/mta-sts.txt', body: '' },
      reason: /redirect 301 .* not followed/,
      temporary: false,
    },
    { name: 'a certificate for another name', response: { body: ENFORCE, cert: 'wrong-name' }, reason: /altnames|Hostname\/IP does not match/i, temporary: false },
    { name: 'a self-signed certificate', response: { body: ENFORCE, cert: 'self-signed' }, reason: /self.signed/i, temporary: false },
    { name: 'a CA the fetch does not trust', response: { body: ENFORCE }, opts: { ca: undefined }, reason: /certificate/i, temporary: false },
    { name: 'content type text/html', response: { body: ENFORCE, contentType: 'text/html' }, reason: /not text\/plain/, temporary: false },
    { name: 'no content type', response: { body: ENFORCE, contentType: null }, reason: /not text\/plain/, temporary: false },
    {
      name: 'an oversized body (Content-Length)',
      response: { body: ENFORCE + 'x'.repeat(POLICY_MAX_BYTES) },
      reason: /exceeds 65536/,
      temporary: false,
    },
    {
      name: 'an oversized body (chunked)',
      response: { body: ENFORCE + 'x'.repeat(POLICY_MAX_BYTES), contentLength: false },
      reason: /exceeds 65536/,
      temporary: false,
    },
    { name: 'a timeout', response: { body: ENFORCE, delayMs: 2000 }, opts: { timeoutMs: 300 }, reason: /within 300 ms/, temporary: true },
    { name: 'a body that stalls', response: { body: ENFORCE, bodyDelayMs: 2000 }, opts: { timeoutMs: 300 }, reason: /within 300 ms/, temporary: true },
    { name: 'an invalid policy', response: { body: policyText({ mode: 'enforce', mx: [], maxAge: 86400 }) }, reason: /without any mx/, temporary: false },
  ];

  for (const row of failures) {
    it(`policy fetch failure: ${row.name} → error`, async () => {
      const domain = freshDomain('fail');
      publish(domain, 'id1', row.response);
      const result = await fetchMtaStsPolicy(domain, fetchOpts(row.opts));
      expect(result).toMatchObject({ kind: 'error', temporary: row.temporary });
      expect(result.kind === 'error' && result.reason).toMatch(row.reason);
    });
  }

  it('does not follow a redirect to a host that would serve a valid policy', async () => {
    const target = freshDomain('target');
    server.set(target, ENFORCE);
    const domain = freshDomain('redirect');
    publish(domain, 'id1', { status: 302, location: `https://mta-sts.${target}:${server.port}/.well-known/mta-sts.txt` });
    expect(await fetchMtaStsPolicy(domain, fetchOpts())).toMatchObject({ kind: 'error' });
    expect(server.requests(target)).toBe(0);
  });

  it('a connection refused is a temporary error', async () => {
    const domain = freshDomain('refused');
    publish(domain, 'id1', ENFORCE);
    // Port 1 on loopback: nothing listens there.
    expect(await fetchMtaStsPolicy(domain, fetchOpts({ port: 1 }))).toMatchObject({ kind: 'error', temporary: true });
  });
});

describe('parseStsRecord (§3.1)', () => {
  const rows: Array<[string, string | null]> = [
    ['v=STSv1; id=20160831085700Z;', '20160831085700Z'],
    ['v=STSv1;id=abc', 'abc'],
    ['v=STSv1 ; id=abc ; ext_1=value', 'abc'],
    ['v=STSv1; id=first; id=second;', 'first'],
    ['v=STSv1;', null], // no id
    ['v=STSv1; id=;', null],
    ['v=STSv1; id=' + 'a'.repeat(33), null], // id is at most 32 characters
    ['v=STSv1; id=a-b;', null],
    ['v=STSv1; ; id=abc', null], // empty field
    ['v=STSv2; id=abc', null],
    ['V=STSv1; id=abc', null], // case-sensitive
  ];
  it.each(rows)('%j → %j', (text, id) => expect(parseStsRecord(text)).toBe(id));
});

describe('parsePolicyText (§3.2)', () => {
  it('accepts LF line ends, ignores unknown keys and keeps the first of a repeated field', () => {
    const text = 'version: STSv1\nmode: testing\nmode: enforce\nextension_x: 1\nmx: a.example.invalid\nmx: a.example.invalid\nmax_age: 0\n\n';
    expect(parsePolicyText(text)).toEqual({ ok: true, policy: { mode: 'testing', mx: ['a.example.invalid'], maxAge: 0 } });
  });

  it('accepts mode none without mx', () => {
    expect(parsePolicyText('version: STSv1\r\nmode: none\r\nmax_age: 86400\r\n')).toMatchObject({ ok: true, policy: { mode: 'none', mx: [] } });
  });

  const invalid: Array<[string, string, RegExp]> = [
    ['no version', 'mode: enforce\nmx: a.invalid\nmax_age: 1', /no version/],
    ['wrong version', 'version: STSv2\nmode: enforce\nmx: a.invalid\nmax_age: 1', /not STSv1/],
    ['mode in upper case', 'version: STSv1\nmode: ENFORCE\nmx: a.invalid\nmax_age: 1', /mode "ENFORCE"/],
    ['no max_age', 'version: STSv1\nmode: enforce\nmx: a.invalid', /no max_age/],
    ['max_age over the limit', `version: STSv1\nmode: enforce\nmx: a.invalid\nmax_age: ${MAX_AGE_LIMIT_S + 1}`, /exceeds/],
    ['negative max_age', 'version: STSv1\nmode: enforce\nmx: a.invalid\nmax_age: -1', /not a number/],
    ['a bad mx pattern', 'version: STSv1\nmode: enforce\nmx: *.*.a.invalid\nmax_age: 1', /invalid mx/],
    ['a line without a colon', 'version: STSv1\nmode enforce\nmx: a.invalid\nmax_age: 1', /not "key: value"/],
    ['HTML', '<html><body>hello</body></html>', /not "key: value"/],
  ];
  it.each(invalid)('rejects %s', (_name, text, reason) => {
    const parsed = parsePolicyText(text);
    expect(parsed.ok).toBe(false);
    expect(!parsed.ok && parsed.reason).toMatch(reason);
  });
});

describe('mxMatches (§4.1)', () => {
  const rows: Array<[string, string, boolean]> = [
    ['mail.example.com', 'mail.example.com', true],
    ['mail.example.com', 'MAIL.Example.COM.', true],
    ['mail.example.com', 'mail2.example.com', false],
    ['mail.example.com', 'x.mail.example.com', false],
    ['*.example.com', 'mx1.example.com', true],
    ['*.example.com', 'MX1.EXAMPLE.COM.', true],
    ['*.example.com', 'example.com', false], // the wildcard needs a label
    ['*.example.com', 'foo.mx1.example.com', false], // exactly one label, the left-most
    ['*.example.com', 'mx1.example.com.evil.invalid', false],
    ['*.example.com', 'mx1example.com', false],
    ['*.example.com', '.example.com', false],
    ['*.mail.example.com', 'mx.mail.example.com', true],
    ['*.mail.example.com', 'mail.example.com', false],
    ['*.xn--bcher-kva.example', 'mx.bücher.example', true], // U-labels compare as A-labels
  ];
  it.each(rows)('pattern %j, host %j → %j', (pattern, host, expected) => expect(mxMatches(pattern, host)).toBe(expected));
});

describe('checkMx', () => {
  const policy = { mode: 'enforce', mx: ['mx1.example.invalid', '*.mail.example.invalid'] };
  it('allows a listed host and names the pattern', () => {
    expect(checkMx(policy, 'a.mail.example.invalid')).toEqual({ ok: true, pattern: '*.mail.example.invalid' });
  });
  it('refuses an unlisted host with a reason', () => {
    expect(checkMx(policy, 'mx.attacker.invalid')).toEqual({ ok: false, reason: expect.stringMatching(/mx\.attacker\.invalid does not match/) });
  });
  it('checks testing policies too (the caller records rather than refuses)', () => {
    expect(checkMx({ ...policy, mode: 'testing' }, 'mx.attacker.invalid').ok).toBe(false);
  });
  it('allows anything under mode none and when no policy applies', () => {
    expect(checkMx({ mode: 'none', mx: [] }, 'anything.invalid')).toEqual({ ok: true, pattern: null });
    expect(checkMx({ mode: 'absent', mx: [] }, 'anything.invalid')).toEqual({ ok: true, pattern: null });
  });
});

describe('MTA-STS cache (§5.1)', () => {
  const START = Date.UTC(2026, 0, 1);
  const MAX_AGE_S = 86400;
  let clock: number;
  beforeEach(() => {
    clock = START;
  });

  function makeCache(extra: Partial<MtaStsCacheOptions> = {}) {
    const backing = createMemoryPolicyCache();
    const cache = createMtaStsCache({ fetch: fetchOpts(), cache: backing, now: () => clock, ...extra });
    return { cache, backing };
  }

  const txtQueries = (domain: string) => dnsStub.queries.filter((q) => q.type === 'TXT' && q.name.toLowerCase() === `_mta-sts.${domain}`).length;
  const policy = (mode: string, mx = ['mx1.example.invalid']) => policyText({ mode, mx, maxAge: MAX_AGE_S });

  it('serves a fresh policy from the cache without refetching', async () => {
    const domain = freshDomain('cached');
    publish(domain, 'v1', policy('enforce'));
    const { cache } = makeCache();
    expect(await cache.policyFor(domain)).toEqual({
      mode: 'enforce',
      mx: ['mx1.example.invalid'],
      id: 'v1',
      expiresAt: START + MAX_AGE_S * 1000,
      source: 'fetch',
    });
    clock += 30_000; // within recheckMs: not even the TXT record is asked again
    expect(await cache.policyFor(domain)).toMatchObject({ mode: 'enforce', id: 'v1', source: 'cache' });
    expect(server.requests(domain)).toBe(1);
    expect(txtQueries(domain)).toBe(1);
  });

  it('rechecks the TXT id after recheckMs, and an unchanged id does not refetch', async () => {
    const domain = freshDomain('recheck');
    publish(domain, 'v1', policy('enforce'));
    const { cache } = makeCache({ recheckMs: 60_000 });
    await cache.policyFor(domain);
    clock += 61_000;
    expect(await cache.policyFor(domain)).toMatchObject({ id: 'v1', source: 'cache' });
    expect(txtQueries(domain)).toBe(2);
    expect(server.requests(domain)).toBe(1);
  });

  it('a new TXT id triggers a refetch', async () => {
    const domain = freshDomain('newid');
    publish(domain, 'v1', policy('testing'));
    const { cache, backing } = makeCache({ recheckMs: 0 });
    expect(await cache.policyFor(domain)).toMatchObject({ mode: 'testing', id: 'v1' });
    publish(domain, 'v2', policy('enforce', ['mx2.example.invalid']));
    clock += 1000;
    expect(await cache.policyFor(domain)).toMatchObject({ mode: 'enforce', mx: ['mx2.example.invalid'], id: 'v2', source: 'fetch' });
    expect(server.requests(domain)).toBe(2);
    expect(backing.entries.get(domain)).toMatchObject({ id: 'v2', fetchedAt: START + 1000 });
  });

  it('an expired policy is refetched', async () => {
    const domain = freshDomain('expired');
    publish(domain, 'v1', policy('enforce'));
    const { cache } = makeCache();
    await cache.policyFor(domain);
    clock += MAX_AGE_S * 1000 + 1;
    expect(await cache.policyFor(domain)).toMatchObject({ mode: 'enforce', source: 'fetch', expiresAt: clock + MAX_AGE_S * 1000 });
    expect(server.requests(domain)).toBe(2);
  });

  it('refreshes in the background when less than 10 % of max_age remains', async () => {
    const domain = freshDomain('ahead');
    publish(domain, 'v1', policy('enforce'));
    const { cache, backing } = makeCache();
    await cache.policyFor(domain);
    clock += MAX_AGE_S * 1000 * 0.95;
    // This call is answered from the cache at once; the refetch runs behind it.
    expect(await cache.policyFor(domain)).toMatchObject({ source: 'cache', expiresAt: START + MAX_AGE_S * 1000 });
    await cache.idle();
    expect(server.requests(domain)).toBe(2);
    expect(backing.entries.get(domain)?.fetchedAt).toBe(clock);
    clock += 1000;
    expect(await cache.policyFor(domain)).toMatchObject({ source: 'cache', expiresAt: START + MAX_AGE_S * 1000 * 0.95 + MAX_AGE_S * 1000 });
  });

  it('a failed fetch keeps an unexpired cached policy in force', async () => {
    const domain = freshDomain('keep');
    publish(domain, 'v1', policy('enforce'));
    const { cache } = makeCache({ recheckMs: 0 });
    await cache.policyFor(domain);
    // The id changes but the new policy cannot be fetched.
    publish(domain, 'v2', { status: 500, body: 'down' });
    clock += 1000;
    expect(await cache.policyFor(domain)).toMatchObject({ mode: 'enforce', id: 'v1', source: 'cache', error: expect.stringMatching(/HTTP 500/) });
    // The TXT record disappears: the cached policy still holds until it expires (§3.1 note).
    dnsStub.remove(`_mta-sts.${domain}`);
    clock += 1000;
    expect(await cache.policyFor(domain)).toMatchObject({ mode: 'enforce', id: 'v1', source: 'cache' });
    // Near expiry the background refresh fails too; the policy stays until it expires.
    clock = START + MAX_AGE_S * 1000 * 0.95;
    expect(await cache.policyFor(domain)).toMatchObject({ mode: 'enforce', source: 'cache' });
    await cache.idle();
    expect(await cache.policyFor(domain)).toMatchObject({ mode: 'enforce', source: 'cache' });
    // Expired, and nothing can be fetched: as if the domain had no policy (§5.1).
    clock = START + MAX_AGE_S * 1000 + 1;
    expect(await cache.policyFor(domain)).toEqual({ mode: 'absent', mx: [], source: 'none' });
  });

  it('without a cached policy, a failed fetch means absent, and is not retried during the backoff', async () => {
    const domain = freshDomain('backoff');
    publish(domain, 'v1', { status: 404, body: '' });
    const { cache } = makeCache({ failureBackoffMs: 300_000 });
    expect(await cache.policyFor(domain)).toEqual({ mode: 'absent', mx: [], source: 'none', error: expect.stringMatching(/HTTP 404/) });
    clock += 60_000;
    expect(await cache.policyFor(domain)).toMatchObject({ mode: 'absent', error: expect.stringMatching(/HTTP 404/) });
    expect(server.requests(domain)).toBe(1);
    server.set(domain, policy('enforce'));
    clock += 300_000;
    expect(await cache.policyFor(domain)).toMatchObject({ mode: 'enforce', source: 'fetch' });
    expect(server.requests(domain)).toBe(2);
  });

  it('no TXT record: absent without error, asked again only after recheckMs; two records: absent with the reason', async () => {
    const { cache } = makeCache({ recheckMs: 60_000 });
    const none = freshDomain('none');
    expect(await cache.policyFor(none)).toEqual({ mode: 'absent', mx: [], source: 'none' });
    clock += 30_000;
    expect(await cache.policyFor(none)).toEqual({ mode: 'absent', mx: [], source: 'none' });
    expect(txtQueries(none)).toBe(1);
    publish(none, 'v1', policy('enforce'));
    clock += 31_000;
    expect(await cache.policyFor(none)).toMatchObject({ mode: 'enforce', source: 'fetch' });
    const two = freshDomain('two');
    dnsStub.set(`_mta-sts.${two}`, 'TXT', ['v=STSv1; id=a;', 'v=STSv1; id=b;']);
    expect(await cache.policyFor(two)).toMatchObject({ mode: 'absent', error: expect.stringMatching(/exactly one/) });
  });

  it('a fetched mode none policy replaces an enforce policy (§8.3)', async () => {
    const domain = freshDomain('withdraw');
    publish(domain, 'v1', policy('enforce'));
    const { cache } = makeCache({ recheckMs: 0 });
    await cache.policyFor(domain);
    publish(domain, 'v2', policyText({ mode: 'none', mx: [], maxAge: MAX_AGE_S }));
    clock += 1000;
    expect(await cache.policyFor(domain)).toMatchObject({ mode: 'none', mx: [], id: 'v2', source: 'fetch' });
  });

  it('concurrent callers share one fetch', async () => {
    const domain = freshDomain('shared');
    publish(domain, 'v1', { body: policy('enforce'), delayMs: 100 });
    const { cache } = makeCache();
    const states = await Promise.all(Array.from({ length: 5 }, () => cache.policyFor(domain)));
    expect(states.every((s) => s.mode === 'enforce')).toBe(true);
    expect(server.requests(domain)).toBe(1);
  });

  it('reports each fetch to onFetch', async () => {
    const domain = freshDomain('report');
    publish(domain, 'v1', policy('testing'));
    const seen: string[] = [];
    const { cache } = makeCache({ onFetch: (d, result, background) => seen.push(`${d} ${result.kind} ${background}`) });
    await cache.policyFor(domain);
    expect(seen).toEqual([`${domain} policy false`]);
  });
});
