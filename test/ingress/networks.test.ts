import { describe, expect, test } from 'vitest';
import { NetworkList, normalizeAddress } from '../../src/ingress/networks.ts';

describe('NetworkList.contains', () => {
  const rows: [string, string[], string, boolean][] = [
    ['IPv4 host', ['127.0.0.1/32'], '127.0.0.1', true],
    ['IPv4 host, other address', ['127.0.0.1/32'], '127.0.0.2', false],
    ['IPv4 without prefix is /32', ['192.0.2.7'], '192.0.2.7', true],
    ['IPv4 range', ['10.0.0.0/8'], '10.200.3.4', true],
    ['IPv4 outside range', ['10.0.0.0/8'], '11.0.0.1', false],
    ['IPv4-mapped IPv6 matches its IPv4 range', ['127.0.0.0/8'], '::ffff:127.0.0.1', true],
    ['IPv4-mapped IPv6 upper case', ['127.0.0.0/8'], '::FFFF:127.0.0.1', true],
    ['IPv4-mapped IPv6 outside range', ['10.0.0.0/8'], '::ffff:127.0.0.1', false],
    ['IPv4-mapped rule covers plain IPv4', ['::ffff:10.0.0.0/104'], '10.1.2.3', true],
    ['IPv4-mapped host rule', ['::ffff:127.0.0.1'], '127.0.0.1', true],
    ['IPv6 host', ['::1/128'], '::1', true],
    ['IPv6 range', ['2001:db8::/32'], '2001:db8:1::25', true],
    ['IPv6 outside range', ['2001:db8::/32'], '2001:db9::1', false],
    ['IPv6 with zone id', ['fe80::/10'], 'fe80::1%eth0', true],
    ['IPv4 rule does not match IPv6 loopback', ['127.0.0.1/32'], '::1', false],
    ['empty list', [], '127.0.0.1', false],
    ['0.0.0.0/0 matches any IPv4', ['0.0.0.0/0'], '203.0.113.9', true],
    ['garbage address is in no network', ['0.0.0.0/0', '::/0'], 'not-an-ip', false],
    ['empty address is in no network', ['0.0.0.0/0'], '', false],
  ];
  test.each(rows)('%s', (_name, cidrs, ip, expected) => {
    expect(new NetworkList(cidrs).contains(ip)).toBe(expected);
  });

  test.each([['10.0.0.0/33'], ['10.0.0.0/x'], ['nonsense'], ['::1/129'], ['1.2.3.4/8/9']])('rejects %s', (cidr) => {
    expect(() => new NetworkList([cidr])).toThrow(/CIDR|prefix/);
  });

  test('normalizeAddress', () => {
    expect(normalizeAddress('::ffff:192.0.2.1')).toBe('192.0.2.1');
    expect(normalizeAddress('FE80::1%lo')).toBe('fe80::1');
    expect(normalizeAddress('x')).toBeNull();
  });
});
