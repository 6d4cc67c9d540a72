// resolveDestination against the DNS stub on loopback: every lookup goes there
// (names live under .test / .invalid, so a stray system lookup finds nothing real).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MX_ADDRESS_LIMIT, resolveDestination, type ResolveOptions } from '../../src/delivery/resolve-mx.ts';
import { SmtpError } from '../../src/smtp-error.ts';
import { startDnsStub, type DnsStub } from '../helpers/dns-stub.ts';

let stub: DnsStub;
let opts: ResolveOptions;

beforeAll(async () => {
  stub = await startDnsStub({
    'ordered.test': {
      MX: [
        { preference: 20, exchange: 'mx2.ordered.test' },
        { preference: 10, exchange: 'mx1.ordered.test' },
        { preference: 30, exchange: 'ghost.ordered.test' },
      ],
    },
    'mx1.ordered.test': { A: ['127.0.0.11'], AAAA: ['::1'] },
    'mx2.ordered.test': { A: ['127.0.0.12'] },
    'equal.test': {
      MX: [
        { preference: 10, exchange: 'a.equal.test' },
        { preference: 10, exchange: 'b.equal.test' },
        { preference: 5, exchange: 'first.equal.test' },
      ],
    },
    'a.equal.test': { A: ['127.0.1.1'] },
    'b.equal.test': { A: ['127.0.1.2'] },
    'first.equal.test': { A: ['127.0.1.3'] },
    'nullmx.test': { MX: [{ preference: 0, exchange: '.' }] },
    'implicit.test': { A: ['127.0.2.1'], AAAA: ['::1'] },
    'empty.test': { TXT: ['v=spf1 -all'] },
    'servfail.test': { failure: 'SERVFAIL' },
    'slow.test': { failure: 'timeout' },
    'ghosts.test': { MX: [{ preference: 10, exchange: 'ghost1.ghosts.test' }, { preference: 20, exchange: 'ghost2.ghosts.test' }] },
    'flaky-mx.test': { MX: [{ preference: 10, exchange: 'broken.flaky-mx.test' }] },
    'broken.flaky-mx.test': { failure: 'SERVFAIL' },
    'many.test': { MX: Array.from({ length: 8 }, (_, i) => ({ preference: i, exchange: `mx${i}.many.test` })) },
    ...Object.fromEntries(Array.from({ length: 8 }, (_, i) => [`mx${i}.many.test`, { A: [`127.0.3.${i + 1}`] }])),
    'relay.routes.test': { A: ['127.0.4.1'] },
  });
  opts = { routes: {}, dnsServers: [stub.server], timeoutMs: 500, port: 2525 };
});

afterAll(async () => {
  await stub.close();
});

async function failure(domain: string, o: Partial<ResolveOptions> = {}): Promise<SmtpError> {
  const err = await resolveDestination(domain, { ...opts, ...o }).then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(SmtpError);
  return err as SmtpError;
}

describe('static routes (like Postfix transport)', () => {
  it('win over MX and keep their port', async () => {
    const d = await resolveDestination('Ordered.Test', { ...opts, routes: { 'ordered.test': '127.0.0.99:2600' } });
    expect(d).toEqual({ kind: 'route', hosts: [{ host: '127.0.0.99', ip: '127.0.0.99', port: 2600, preference: null }] });
  });

  it('take IPv6 literals in brackets', async () => {
    const d = await resolveDestination('v6.test', { ...opts, routes: { 'v6.test': '[::1]:2601' } });
    expect(d).toEqual({ kind: 'route', hosts: [{ host: '::1', ip: '::1', port: 2601, preference: null }] });
  });

  it('resolve a host name through the configured resolver, without MX lookup', async () => {
    const before = stub.queries.length;
    const d = await resolveDestination('routed.test', { ...opts, routes: { 'routed.test': 'relay.routes.test:2602' } });
    expect(d).toEqual({ kind: 'route', hosts: [{ host: 'relay.routes.test', ip: '127.0.4.1', port: 2602, preference: null }] });
    expect(stub.queries.slice(before).map((q) => q.type).sort()).toEqual(['A', 'AAAA']);
  });

  it('defer when the route host has no address', async () => {
    const err = await failure('routed.test', { routes: { 'routed.test': 'nowhere.routes.test:25' } });
    expect(err).toMatchObject({ code: 451, enhanced: '4.4.3', stage: 'dns' });
  });
});

describe('MX records', () => {
  it('are sorted by preference, A before AAAA, unresolvable names skipped', async () => {
    const d = await resolveDestination('ordered.test', opts);
    expect(d).toEqual({
      kind: 'mx',
      hosts: [
        { host: 'mx1.ordered.test', ip: '127.0.0.11', port: 2525, preference: 10 },
        { host: 'mx1.ordered.test', ip: '::1', port: 2525, preference: 10 },
        { host: 'mx2.ordered.test', ip: '127.0.0.12', port: 2525, preference: 20 },
      ],
    });
    // Asked of the stub, not of the system resolver.
    expect(stub.queries.some((q) => q.name === 'ordered.test' && q.type === 'MX')).toBe(true);
  });

  it('shuffle equal preferences (RFC 5321 §5.1) and keep lower preferences first', async () => {
    const names = async (random: () => number) => {
      const d = await resolveDestination('equal.test', { ...opts, random });
      return d.kind === 'mx' ? d.hosts.map((h) => h.host) : [];
    };
    expect(await names(() => 0)).toEqual(['first.equal.test', 'b.equal.test', 'a.equal.test']);
    expect(await names(() => 0.99)).toEqual(['first.equal.test', 'a.equal.test', 'b.equal.test']);
    const seen = new Set<string>();
    for (let i = 0; i < 40 && seen.size < 2; i++) seen.add((await names(Math.random)).join(','));
    expect(seen.size).toBe(2);
  });

  it(`stop at ${MX_ADDRESS_LIMIT} addresses (Postfix smtp_mx_address_limit)`, async () => {
    const d = await resolveDestination('many.test', opts);
    expect(d.kind === 'mx' && d.hosts.map((h) => h.preference)).toEqual([0, 1, 2, 3, 4]);
  });

  it('a lone null MX means the domain takes no mail (RFC 7505)', async () => {
    expect(await resolveDestination('nullmx.test', opts)).toEqual({ kind: 'null-mx' });
  });

  it('defer when no MX host resolves', async () => {
    expect(await failure('ghosts.test')).toMatchObject({ code: 451, enhanced: '4.4.3', temporary: true });
    expect(await failure('flaky-mx.test')).toMatchObject({ code: 451, enhanced: '4.4.3' });
  });
});

describe('implicit MX and errors', () => {
  it('no MX records: the domain itself, preference 0 (RFC 5321 §5.1)', async () => {
    const d = await resolveDestination('implicit.test', opts);
    expect(d).toEqual({
      kind: 'implicit',
      hosts: [
        { host: 'implicit.test', ip: '127.0.2.1', port: 2525, preference: 0 },
        { host: 'implicit.test', ip: '::1', port: 2525, preference: 0 },
      ],
    });
  });

  it('a domain that does not exist bounces: 550 5.1.2', async () => {
    const err = await failure('nonexistent.invalid');
    expect(err).toMatchObject({ code: 550, enhanced: '5.1.2', stage: 'dns', temporary: false });
  });

  it('a domain with neither MX nor address bounces too', async () => {
    expect(await failure('empty.test')).toMatchObject({ code: 550, enhanced: '5.1.2' });
  });

  it('SERVFAIL defers: 451 4.4.3', async () => {
    expect(await failure('servfail.test')).toMatchObject({ code: 451, enhanced: '4.4.3', stage: 'dns', temporary: true });
  });

  it('a resolver that does not answer defers', async () => {
    const started = Date.now();
    expect(await failure('slow.test', { timeoutMs: 100 })).toMatchObject({ code: 451, enhanced: '4.4.3' });
    expect(Date.now() - started).toBeLessThan(5000);
  });
});
