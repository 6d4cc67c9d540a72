// Rate limits and lockouts (src/http/rate-limit.ts, limits.ts): the counting on its
// own with a clock the test moves, then as a sign-in form and a throttled
// endpoint use them over HTTP.
import { describe, expect, it, afterEach } from 'vitest';
import { ipKey, MemoryRateLimitStore, RateLimiter, type LimitRule } from '../../src/http/rate-limit.ts';
import { DEMO_PASSWORD, InjectClient, SIGN_IN_RULES, startTestWebServer, testClock, THROTTLE_RULE, type TestWebServer } from '../helpers/web-server.ts';

const MINUTE = 60_000;

describe('RateLimiter', () => {
  const throttle: LimitRule = { name: 't', limit: 4, windowMs: MINUTE, lockoutMs: 0 };
  const lockout: LimitRule = { name: 'l', limit: 3, windowMs: 10 * MINUTE, lockoutMs: 30 * MINUTE };

  it('throttle: `limit` events per window, the next refused until the window ends', async () => {
    const clock = testClock();
    const limiter = new RateLimiter(new MemoryRateLimitStore(), clock.now);
    const start = clock.now();
    for (let i = 1; i <= 4; i++) expect(await limiter.consume(throttle, ['ip:a'])).toEqual({ allowed: true, remaining: 4 - i });
    expect(await limiter.consume(throttle, ['ip:a'])).toEqual({ allowed: false, retryAt: start + MINUTE });
    expect((await limiter.consume(throttle, ['ip:b'])).allowed).toBe(true);
    clock.advance(MINUTE);
    expect(await limiter.consume(throttle, ['ip:a'])).toEqual({ allowed: true, remaining: 3 });
  });

  it('lockout: the failure that reaches the limit locks for lockoutMs, refused tries do not extend it, clear() forgets', async () => {
    const clock = testClock();
    const limiter = new RateLimiter(new MemoryRateLimitStore(), clock.now);
    expect(await limiter.check(lockout, ['acct:x'])).toEqual({ allowed: true, remaining: 3 });
    await limiter.consume(lockout, ['acct:x']);
    await limiter.consume(lockout, ['acct:x']);
    expect(await limiter.check(lockout, ['acct:x'])).toEqual({ allowed: true, remaining: 1 });
    const lockedAt = clock.now();
    expect(await limiter.consume(lockout, ['acct:x'])).toEqual({ allowed: true, remaining: 0 });
    expect(await limiter.check(lockout, ['acct:x'])).toEqual({ allowed: false, retryAt: lockedAt + 30 * MINUTE });
    clock.advance(20 * MINUTE);
    expect(await limiter.consume(lockout, ['acct:x'])).toEqual({ allowed: false, retryAt: lockedAt + 30 * MINUTE });
    clock.advance(10 * MINUTE);
    expect(await limiter.check(lockout, ['acct:x'])).toEqual({ allowed: true, remaining: 3 });
    await limiter.consume(lockout, ['acct:x']);
    await limiter.clear(lockout, ['acct:x']);
    expect(await limiter.check(lockout, ['acct:x'])).toEqual({ allowed: true, remaining: 3 });
  });

  it('several keys: refused when any is locked; the tries left are the fewest', async () => {
    const clock = testClock();
    const limiter = new RateLimiter(new MemoryRateLimitStore(), clock.now);
    await limiter.consume(lockout, ['item:1']);
    expect(await limiter.check(lockout, ['item:1', 'addr:a'])).toEqual({ allowed: true, remaining: 2 });
    await limiter.consume(lockout, ['item:1']);
    await limiter.consume(lockout, ['item:1']);
    expect((await limiter.check(lockout, ['addr:a', 'item:1'])).allowed).toBe(false);
    expect((await limiter.check(lockout, ['addr:a'])).allowed).toBe(true);
  });

  it('the memory store stays bounded, and spraying new keys cannot evict a lockout', async () => {
    const clock = testClock();
    const store = new MemoryRateLimitStore({ max: 10 });
    const limiter = new RateLimiter(store, clock.now);
    for (let i = 0; i < 3; i++) await limiter.consume(lockout, ['acct:victim']);
    for (let i = 0; i < 100; i++) await limiter.consume(lockout, [`acct:spray-${i}`]);
    expect((await store.describe()).length).toBeLessThanOrEqual(10);
    expect((await limiter.check(lockout, ['acct:victim'])).allowed).toBe(false);
  });

  it('IPv4 counts per address, IPv6 per /64 (one subscriber holds a whole /64)', () => {
    expect(ipKey('192.0.2.7')).toBe('ip:192.0.2.7');
    expect(ipKey('::ffff:192.0.2.7')).toBe('ip:192.0.2.7');
    expect(ipKey('2001:db8:1:2::1')).toBe(ipKey('2001:0db8:0001:0002:ffff:eeee:dddd:cccc'));
    expect(ipKey('2001:db8:1:2::1')).toBe('ip:2001:db8:1:2::/64');
    expect(ipKey('2001:db8:1:3::1')).not.toBe(ipKey('2001:db8:1:2::1'));
    expect(ipKey('::1')).toBe('ip:0:0:0:0::/64');
    expect(ipKey('fe80::1%eth0')).toBe('ip:fe80:0:0:0::/64');
  });
});

describe('over HTTP', () => {
  let web: TestWebServer;
  afterEach(async () => web?.close());

  const tryPassword = async (browser: InjectClient, user: string, password: string) =>
    browser.post('/sign-in', { _csrf: await browser.formToken('/sign-in'), user, password });

  it('sign-in: each wrong password says how many tries are left; then the account is locked, right password or not, until the time shown', async () => {
    web = await startTestWebServer();
    const browser = new InjectClient(web);
    const texts = [];
    for (let i = 0; i < 3; i++) {
      const res = await tryPassword(browser, 'ana', 'wrong');
      expect(res.statusCode).toBe(401);
      texts.push(/<div class="notice error" role="alert"><p>([^<]*)</.exec(res.body)?.[1]);
    }
    expect(texts).toEqual(['That password is not right. You have 2 tries left.', 'That password is not right. You have 1 try left.', 'That password is not right, and that was the last try for now.']);
    const locked = await tryPassword(browser, 'ana', DEMO_PASSWORD);
    expect(locked.statusCode).toBe(429);
    expect(locked.headers['retry-after']).toBe(String(15 * 60));
    expect(locked.body).toContain('Too many attempts');
    expect(locked.body).toContain('You can try again after 12:15 UTC (in about 15 minutes)');
    expect(locked.headers['set-cookie'] ?? []).not.toEqual(expect.arrayContaining([expect.stringContaining('__Host-portal-sid=')]));
    // Another account from the same address is not locked by ana's failures…
    expect((await tryPassword(browser, 'ben', DEMO_PASSWORD)).statusCode).toBe(303);
    // …and ana gets in once the lockout has run out.
    web.clock.advance(15 * MINUTE);
    expect((await tryPassword(browser, 'ana', DEMO_PASSWORD)).statusCode).toBe(303);
  });

  it('the IP has its own, looser limit across accounts', async () => {
    web = await startTestWebServer();
    const browser = new InjectClient(web);
    const perIp = SIGN_IN_RULES.perIp.limit;
    for (let i = 0; i < perIp; i++) expect((await tryPassword(browser, `user${i}`, 'wrong')).statusCode).toBe(401);
    const res = await tryPassword(browser, 'fresh-account', DEMO_PASSWORD);
    expect(res.statusCode).toBe(429);
  });

  it("a right password clears the account's failures, not the IP's", async () => {
    web = await startTestWebServer();
    const browser = new InjectClient(web);
    await tryPassword(browser, 'ana', 'wrong');
    await tryPassword(browser, 'ana', 'wrong');
    expect((await tryPassword(browser, 'ana', DEMO_PASSWORD)).statusCode).toBe(303);
    const next = await tryPassword(browser, 'ana', 'wrong');
    expect(next.body).toContain('You have 2 tries left.');
    const ipState = (await web.server.stateProbes.snapshot())['rate-limits'] as { key: string; state: { count: number } }[];
    expect(ipState.find((e) => e.key === 'demo-sign-in-ip:ip:127.0.0.1')?.state.count).toBe(3);
  });

  it(`a throttled endpoint: ${THROTTLE_RULE.limit} requests a minute per IP, then 429 with Retry-After`, async () => {
    web = await startTestWebServer();
    const browser = new InjectClient(web);
    const token = await browser.formToken();
    for (let i = 0; i < THROTTLE_RULE.limit; i++) expect((await browser.post('/throttled', { _csrf: token })).statusCode).toBe(200);
    const refused = await browser.post('/throttled', { _csrf: token }, { origin: web.origin, 'sec-fetch-site': 'same-origin', accept: 'application/json' });
    expect(refused.statusCode).toBe(429);
    expect(refused.headers['retry-after']).toBe('60');
    expect(refused.json()).toMatchObject({ error: { status: 429, title: 'Too many attempts' } });
    web.clock.advance(MINUTE);
    expect((await browser.post('/throttled', { _csrf: token })).statusCode).toBe(200);
  });
});
