// The self-loop check of delivery (loops.ts): which next hops are this relay, and what
// is left of a destination once they are taken out.
import os from 'node:os';
import { describe, expect, it } from 'vitest';
import { hopsBeforeUs, isSelf, withoutSelf, type Self } from '../../src/delivery/loops.ts';
import type { MxTarget } from '../../src/delivery/resolve-mx.ts';

const target = (host: string, ip: string, port: number, preference: number | null = 10): MxTarget => ({ host, ip, port, preference });
const self = (listeners: Self['listeners']): Self => ({ hostname: 'relay.example.org', listeners });

/** An address of this machine that is not loopback, when it has one. */
const interfaceAddress = Object.values(os.networkInterfaces())
  .flat()
  .find((a) => a && !a.internal && a.family === 'IPv4')?.address;

describe('isSelf', () => {
  it('a listener on one address is that address and port, nothing else', () => {
    const us = self([{ host: '127.0.0.1', port: 2525 }]);
    expect(isSelf(target('mx.other.test', '127.0.0.1', 2525), us)).toBe(true);
    expect(isSelf(target('mx.other.test', '::ffff:127.0.0.1', 2525), us)).toBe(true);
    expect(isSelf(target('mx.other.test', '127.0.0.1', 25), us)).toBe(false);
    expect(isSelf(target('mx.other.test', '127.0.0.2', 2525), us)).toBe(false);
  });

  it('a listener on 0.0.0.0 or :: is every local address on its port, loopback included', () => {
    for (const host of ['0.0.0.0', '::']) {
      const us = self([{ host, port: 25 }]);
      expect(isSelf(target('mx.other.test', '127.0.0.1', 25), us)).toBe(true);
      expect(isSelf(target('mx.other.test', '127.45.6.7', 25), us)).toBe(true);
      if (interfaceAddress) expect(isSelf(target('mx.other.test', interfaceAddress, 25), us)).toBe(true);
      expect(isSelf(target('mx.other.test', '192.0.2.1', 25), us)).toBe(false);
      expect(isSelf(target('mx.other.test', '127.0.0.1', 2526), us)).toBe(false);
    }
    expect(isSelf(target('mx.other.test', '::1', 25), self([{ host: '::', port: 25 }]))).toBe(true);
    expect(isSelf(target('mx.other.test', '::1', 25), self([{ host: '0.0.0.0', port: 25 }]))).toBe(false);
  });

  it('an MX host named like server.hostname is us, whatever its address and case', () => {
    expect(isSelf(target('Relay.Example.org.', '192.0.2.1', 25), self([]))).toBe(true);
  });
});

describe('withoutSelf', () => {
  const us = self([{ host: '127.0.0.1', port: 25 }]);
  it('a route to ourselves leaves nothing; a route to our own name on another port is another service', () => {
    expect(withoutSelf({ kind: 'route', hosts: [target('127.0.0.1', '127.0.0.1', 25, null)] }, us)).toEqual([]);
    const filter = target('relay.example.org', '127.0.0.1', 10025, null);
    expect(withoutSelf({ kind: 'route', hosts: [filter] }, us)).toEqual([filter]);
    expect(withoutSelf({ kind: 'mx', hosts: [{ ...filter, preference: 10 }] }, us)).toEqual([]);
  });

  it('an MX list that names us keeps only the hosts preferred over us (Postfix)', () => {
    const better = target('mx1.example.test', '192.0.2.1', 25, 5);
    const ours = target('mx2.example.test', '127.0.0.1', 25, 10);
    const worse = target('mx3.example.test', '192.0.2.3', 25, 20);
    expect(withoutSelf({ kind: 'mx', hosts: [better, ours, worse] }, us)).toEqual([better]);
    expect(withoutSelf({ kind: 'mx', hosts: [ours, worse] }, us)).toEqual([]);
    expect(withoutSelf({ kind: 'mx', hosts: [better, worse] }, us)).toEqual([better, worse]);
  });
});

it('hopsBeforeUs leaves out our own stamp', () => {
  expect(hopsBeforeUs(Buffer.from('Received: ours\r\nReceived: theirs\r\nSubject: x\r\n\r\nReceived: body\r\n'))).toBe(1);
  expect(hopsBeforeUs(Buffer.from('Subject: a bounce we wrote\r\n\r\n'))).toBe(0);
});
