// `sealrelay check-domain` with delivery.dns.dnssec: the DNSSEC status of the MX
// set, each MX host's TLSA records and whether its certificate matches them, from
// a real signed zone (Knot + Unbound, test/helpers/dnssec-zone.ts) and real MXs.
import crypto from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CheckDomainReport } from '../../src/cli/check-domain.ts';
import { startSignedZones, type SignedZones } from '../helpers/dnssec-zone.ts';
import { startMxSet, type MxSet } from '../helpers/mx.ts';
import { makeSandbox, runCli, type Sandbox } from './harness.ts';

const sha256 = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');
const WRONG = sha256(Buffer.from('no test key'));

describe('check-domain with DANE', () => {
  let mxs: MxSet;
  let zones: SignedZones;
  let box: Sandbox;
  let certHash: string;

  beforeAll(async () => {
    mxs = await startMxSet([
      { kind: 'selfsigned', name: 'mx1.dane.test' },
      { kind: 'selfsigned', name: 'mx2.dane.test' },
    ]);
    certHash = sha256(new crypto.X509Certificate(mxs.byName('mx1.dane.test').certPem!).raw);
    zones = await startSignedZones({
      zones: [
        {
          origin: 'dane.test',
          signing: 'signed',
          records: [
            '@ MX 10 mx1',
            '@ MX 20 mx2',
            `mx1 A ${mxs.byName('mx1.dane.test').host}`,
            `mx2 A ${mxs.byName('mx2.dane.test').host}`,
            `_${mxs.port}._tcp.mx1 TLSA 3 0 1 ${certHash}`,
            `_${mxs.port}._tcp.mx2 TLSA 3 1 1 ${WRONG}`,
          ],
        },
      ],
    });
    box = makeSandbox(['delivery:', `  port: ${mxs.port}`, `  dns: { servers: [${JSON.stringify(zones.resolver)}], dnssec: true, timeout_ms: 2000 }`, '  connect_timeout_ms: 3000', '  greeting_timeout_ms: 3000'].join('\n'));
  }, 20_000);

  afterAll(async () => {
    box?.cleanup();
    await zones?.close();
    await mxs?.close();
  });

  it('shows the MX set secure, the TLSA records of each MX, and which certificate matches', async () => {
    const res = await runCli(['--config', box.configFile, 'check-domain', 'dane.test']);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toMatch(/DNSSEC:\s+MX records secure \(validated\): DANE applies where TLSA is published/);
    const [, mx1, mx2] = res.stdout.split(/\n\s+\d+\s+mx\d\.dane\.test /);
    expect(mx1).toMatch(new RegExp(`DANE\\s+certificate MATCHES TLSA 3 0 1 ${certHash}`));
    expect(mx1).toMatch(new RegExp(`TLSA\\s+3 0 1 ${certHash}`));
    expect(mx2).toMatch(/DANE\s+certificate does NOT match the TLSA records \(delivery defers\)/);
    expect(mx2).toMatch(new RegExp(`TLSA\\s+3 1 1 ${WRONG}`));
    // The policy outlook: the default is auto, DANE where published.
    expect(res.stdout).toMatch(/postmaster@dane\.test → mode opportunistic, verification auto/);
  });

  it('--json carries the same facts', async () => {
    const res = await runCli(['--config', box.configFile, 'check-domain', 'dane.test', '--json']);
    const report = JSON.parse(res.stdout) as CheckDomainReport;
    expect(report.dnssec).toEqual({ enabled: true, mxSecure: true });
    expect(report.mxs.map((m) => [m.host, m.dane?.status])).toEqual([
      ['mx1.dane.test', 'matched'],
      ['mx2.dane.test', 'mismatch'],
    ]);
  });
});
