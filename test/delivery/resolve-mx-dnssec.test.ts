// resolveDestination through the DNSSEC resolver when the resolver gives no answer:
// an indeterminate lookup defers (451 4.4.3), never falls back to unvalidated DNS.
import dgram from 'node:dgram';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveDestination, SecureLookupFailed } from '../../src/delivery/resolve-mx.ts';
import { makeDnssecResolver } from '../../src/net/dnssec.ts';

describe('DNSSEC MX resolution without an answer', () => {
  let silent: dgram.Socket;
  let server: string;

  beforeAll(async () => {
    // A resolver that reads every query and answers none.
    silent = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => silent.bind(0, '127.0.0.1', resolve));
    server = `127.0.0.1:${silent.address().port}`;
  });
  afterAll(() => silent?.close());

  it('an MX lookup that times out is indeterminate: 451 4.4.3, temporary', async () => {
    const err = await resolveDestination('example.test', { routes: {}, dnsServers: [server], timeoutMs: 200, port: 25, dnssec: makeDnssecResolver({ servers: [server], timeoutMs: 200 }) }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SecureLookupFailed);
    expect(err).toMatchObject({ kind: 'indeterminate', code: 451, enhanced: '4.4.3', temporary: true });
  });
});
