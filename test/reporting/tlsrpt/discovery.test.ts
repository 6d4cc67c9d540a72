// Where reports go: `_smtp._tls.<domain>` TXT (RFC 8460 §3) read from a real DNS
// server on loopback (the stub), hostile records included.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { discoverTlsRpt, MAX_DESTINATIONS, parseTlsRptRecord } from '../../../src/reporting/tlsrpt/discovery.ts';
import { startDnsStub, type DnsStub } from '../../helpers/dns-stub.ts';

let dns: DnsStub;
beforeAll(async () => {
  dns = await startDnsStub({
    '_smtp._tls.good.test': { TXT: ['v=TLSRPTv1; rua=mailto:tls@good.test,https://reports.good.test/v1/tlsrpt'] },
    // §3: one record's strings are joined; other TXT records beside it are not TLSRPT ones.
    '_smtp._tls.split.test': { TXT: [['v=TLSRPTv1;rua=mai', 'lto:tls@split.test'], 'google-site-verification=abc'] },
    '_smtp._tls.two.test': { TXT: ['v=TLSRPTv1; rua=mailto:a@two.test', 'v=TLSRPTv1; rua=mailto:b@two.test'] },
    '_smtp._tls.junk.test': { TXT: ['v=TLSRPTv1; rua=ftp://x.test/r, mailto:not an address, javascript:alert(1), http://plain.test/r, mailto:ok@junk.test?subject=hi; ext=1'] },
    '_smtp._tls.none.test': { TXT: ['v=TLSRPTv1; rua=ftp://x.test/, mailto:'] },
    '_smtp._tls.norua.test': { TXT: ['v=TLSRPTv1; foo=bar'] },
    '_smtp._tls.old.test': { TXT: ['v=TLSRPTv2; rua=mailto:a@old.test'] },
    '_smtp._tls.many.test': { TXT: [`v=TLSRPTv1; rua=${Array.from({ length: 20 }, (_, i) => `mailto:r${i}@many.test`).join(',')}`] },
    '_smtp._tls.crlf.test': { TXT: ['v=TLSRPTv1; rua=mailto:a@crlf.test%0d%0aBcc:x@evil.test'] },
    '_smtp._tls.broken.test': { failure: 'SERVFAIL' },
  });
});
afterAll(() => dns.close());

const discover = (domain: string) => discoverTlsRpt(domain, { dnsServers: [dns.server], timeoutMs: 2000 });

describe('TLSRPT discovery (RFC 8460 §3)', () => {
  it('reads rua mailto: and https: destinations through the configured resolver', async () => {
    expect(await discover('Good.Test.')).toEqual({ kind: 'record', rua: ['mailto:tls@good.test', 'https://reports.good.test/v1/tlsrpt'], ignored: [] });
    expect(dns.queries.some((q) => q.name.toLowerCase() === '_smtp._tls.good.test' && q.type === 'TXT')).toBe(true);
    expect(await discover('split.test')).toMatchObject({ kind: 'record', rua: ['mailto:tls@split.test'] });
  });

  it('several TLSRPT records: none is used', async () => {
    expect(await discover('two.test')).toMatchObject({ kind: 'none', reason: expect.stringMatching(/2 v=TLSRPTv1 TXT records/) });
  });

  it('bad URIs are ignored, the good ones kept; a record with none takes no reports', async () => {
    const junk = await discover('junk.test');
    expect(junk).toMatchObject({ kind: 'record', rua: ['mailto:ok@junk.test'] });
    expect(junk.kind === 'record' && junk.ignored).toEqual(['ftp://x.test/r', 'mailto:not an address', 'javascript:alert(1)', 'http://plain.test/r']);
    expect(await discover('none.test')).toMatchObject({ kind: 'none' });
    expect(await discover('norua.test')).toMatchObject({ kind: 'none', reason: 'no rua= field' });
    expect(await discover('old.test')).toMatchObject({ kind: 'none' });
    // A header injection through a percent-encoded line break is no address.
    expect(await discover('crlf.test')).toMatchObject({ kind: 'none' });
  });

  it('a hostile record cannot multiply the reports', async () => {
    const many = await discover('many.test');
    expect(many.kind === 'record' && many.rua.length).toBe(MAX_DESTINATIONS);
  });

  it('no record, or a failing lookup', async () => {
    expect(await discover('absent.test')).toMatchObject({ kind: 'none' });
    expect(await discover('broken.test')).toMatchObject({ kind: 'error', reason: expect.stringMatching(/SERVFAIL/) });
  });

  it('field syntax', () => {
    expect(parseTlsRptRecord('v=TLSRPTv1 ; rua=mailto:a@x.test ;')).toMatchObject({ kind: 'record', rua: ['mailto:a@x.test'] });
    expect(parseTlsRptRecord('v=TLSRPTv1; rua=mailto:a@x.test; =bad')).toMatchObject({ kind: 'none' });
    expect(parseTlsRptRecord('v=TLSRPTv1rua=mailto:a@x.test')).toMatchObject({ kind: 'none' });
  });
});
