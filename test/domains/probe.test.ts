// probeDomain against a loopback world: MX hosts from the DNS stub (TLS 1.3 with a
// certificate from the test CA, plaintext only, self-signed, an expired certificate,
// TLS 1.0/1.1 only, and an address where nothing listens), and an MTA-STS policy served over HTTPS by
// the policy server. Every fact in the report is held against what the MX itself
// presented.
//
// Then the prober (prober.ts) against MXs of the same kinds, reached through static
// routes and, for MX fallback, the DNS stub. Time is injected: a fake timer records
// what was armed and the test fires it; `record` is a fake collecting the observations.
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../src/config/schema.ts';
import { probeDomain, type DomainReport, type MxProbe } from '../../src/domains/probe.ts';
import { domainsToProbe, FIRST_RUN_DELAY_MS, startProber, type ProbeObservation, type ProberOptions, type ProberTimers } from '../../src/domains/prober.ts';
import { createLogger } from '../../src/log.ts';
import type { DomainKnowledge } from '../../src/store/store.ts';
import { startDnsStub, type DnsStub } from '../helpers/dns-stub.ts';
import { policyText, startPolicyServer, type PolicyServer } from '../helpers/https-policy-server.ts';
import { allocLoopbackIp, mxZone, startMxSet, type MxSet } from '../helpers/mx.ts';
import { testConfig } from '../helpers/relay.ts';
import { sharedTestCa, writeTemp } from '../helpers/test-ca.ts';

const DAY_MS = 24 * 60 * 60 * 1000;

describe('probeDomain', () => {
  let dns: DnsStub;
  let mxs: MxSet;
  let web: PolicyServer;
  let config: Config;
  const dead = { name: 'mx5.probe.test', host: allocLoopbackIp() };

  beforeAll(async () => {
    const expired = sharedTestCa().issue({
      commonName: 'mx4.probe.test',
      notBefore: new Date(Date.now() - 40 * DAY_MS),
      notAfter: new Date(Date.now() - 2 * DAY_MS),
    });
    mxs = await startMxSet([
      { kind: 'tls13', name: 'mx1.probe.test' },
      { kind: 'plain', name: 'mx2.probe.test' },
      { kind: 'selfsigned', name: 'mx3.probe.test' },
      { kind: 'tls13', name: 'mx4.probe.test', serverOptions: { key: expired.keyPem, cert: expired.certPem } },
      { kind: 'weak-protocol', name: 'mx.weak.test' },
    ]);
    web = await startPolicyServer({ ca: sharedTestCa() });
    web.set('probe.test', policyText({ mode: 'enforce', mx: ['mx1.probe.test', '*.elsewhere.test'], maxAge: 86400 }));
    dns = await startDnsStub({
      ...mxZone('probe.test', [...mxs.mxs.filter((m) => m.name.endsWith('.probe.test')), dead]),
      ...mxZone('weak.test', [mxs.byName('mx.weak.test')]),
      '_mta-sts.probe.test': { TXT: ['v=STSv1; id=20260101;'] },
      'mta-sts.probe.test': { A: ['127.0.0.1'] },
      'nullmx.test': { MX: [{ preference: 0, exchange: '.' }] },
      'plainonly.test': { MX: [{ preference: 10, exchange: 'mx2.probe.test' }] },
      'broken-sts.test': { MX: [{ preference: 10, exchange: 'mx1.probe.test' }] },
      '_mta-sts.broken-sts.test': { TXT: ['v=STSv1; id=b1;'] },
      'mta-sts.broken-sts.test': { A: ['127.0.0.1'] },
    });
    config = testConfig({
      delivery: {
        port: mxs.port,
        dns: { servers: [dns.server], timeout_ms: 2000 },
        routes: { 'routed.test': `${mxs.byName('mx1.probe.test').host}:${mxs.port}` },
      },
      mta_sts: { enabled: true, ca_file: writeTemp('probe-sts-ca.pem', sharedTestCa().certPem), https_port: web.port, timeout_ms: 3000 },
    });
  }, 30_000);

  afterAll(async () => {
    await web?.close();
    await mxs?.close();
    await dns?.close();
  });

  const byHost = (report: DomainReport, host: string): MxProbe => {
    const found = report.mxs.find((m) => m.host === host);
    if (!found) throw new Error(`no ${host} in the report`);
    return found;
  };

  it('reports every MX address: reachability, STARTTLS, TLS, certificate, expiry and verdict', async () => {
    const progress: string[] = [];
    const report = await probeDomain('Probe.Test.', { config, onProgress: (e) => progress.push(e) });
    expect(report).toMatchObject({ domain: 'probe.test', usable: true, destination: { kind: 'mx', route: null, reason: null } });
    expect(report.mxs.map((m) => [m.host, m.preference])).toEqual([
      ['mx1.probe.test', 10],
      ['mx2.probe.test', 20],
      ['mx3.probe.test', 30],
      ['mx4.probe.test', 40],
      ['mx5.probe.test', 50],
    ]);

    const good = byHost(report, 'mx1.probe.test');
    const goodMx = mxs.byName('mx1.probe.test');
    const goodCert = new X509Certificate(goodMx.certPem!);
    expect(good).toMatchObject({
      ip: goodMx.host,
      port: mxs.port,
      reachable: true,
      starttlsOffered: true,
      tls: { protocol: 'TLSv1.3', cipher: goodMx.sessions[0]!.cipher, bits: 256 },
      floor: { ok: true, problem: null },
      certificate: {
        subject: 'CN=mx1.probe.test',
        fingerprint256: goodCert.fingerprint256,
        notAfter: new Date(goodCert.validTo).toISOString(),
        authorized: true,
        authorizationError: null,
      },
      error: null,
    });
    expect(good.certificate!.daysLeft).toBeGreaterThanOrEqual(29);
    // The probe sends nothing and says goodbye.
    expect(goodMx.received).toHaveLength(0);
    expect(goodMx.sessions[0]!.servername).toBe('mx1.probe.test');

    expect(byHost(report, 'mx2.probe.test')).toMatchObject({ reachable: true, starttlsOffered: false, tls: null, floor: null, certificate: null, error: null });

    const selfSigned = byHost(report, 'mx3.probe.test');
    expect(selfSigned).toMatchObject({
      reachable: true,
      starttlsOffered: true,
      tls: { protocol: 'TLSv1.3' },
      floor: { ok: true },
      certificate: { subject: 'CN=mx3.probe.test', authorized: false, authorizationError: 'DEPTH_ZERO_SELF_SIGNED_CERT' },
      error: null,
    });

    const expired = byHost(report, 'mx4.probe.test');
    expect(expired.certificate).toMatchObject({ authorized: false, authorizationError: 'CERT_HAS_EXPIRED' });
    expect(expired.certificate!.daysLeft).toBeLessThan(0);

    const gone = byHost(report, 'mx5.probe.test');
    expect(gone).toMatchObject({ ip: dead.host, reachable: false, starttlsOffered: null, tls: null, error: { stage: 'connect' } });
    expect(gone.error!.reason).toMatch(/ECONNREFUSED/);

    expect(progress[0]).toBe('probe.test: resolving MX…');
    expect(progress).toContain(`mx1.probe.test [${goodMx.host}]:${mxs.port}: connecting…`);
    expect(progress).toContainEqual(expect.stringMatching(/^mx1\.probe\.test \[[\d.]+\]:\d+: STARTTLS, TLSv1\.3 TLS_\w+ 256 bits, certificate verified$/));
    expect(progress).toContainEqual(expect.stringMatching(/^mx2\.probe\.test .*: no STARTTLS \(plaintext only\)$/));
    expect(progress).toContainEqual(expect.stringMatching(/^mx5\.probe\.test .*ECONNREFUSED/));
  });

  it('a handshake that fails (TLS 1.0/1.1 only, under our floor) is reported with its reason', async () => {
    const progress: string[] = [];
    const report = await probeDomain('weak.test', { config, onProgress: (e) => progress.push(e) });
    expect(report.mxs[0]).toMatchObject({ host: 'mx.weak.test', reachable: true, starttlsOffered: true, tls: null, certificate: null, error: { stage: 'starttls' } });
    expect(report.mxs[0]!.error!.reason).toMatch(/^TLS handshake failed: .*(protocol|version)/i);
    expect(progress).toContainEqual(expect.stringMatching(/^mx\.weak\.test .*: STARTTLS offered, TLS handshake failed: /));
  });

  it('reports the MTA-STS record and policy, and which MX hosts it lists', async () => {
    const report = await probeDomain('probe.test', { config });
    expect(report.mtaSts).toMatchObject({ status: 'policy', id: '20260101', mode: 'enforce', mx: ['mx1.probe.test', '*.elsewhere.test'], maxAge: 86400, applied: true, notAppliedBecause: null });
    if (report.mtaSts.status !== 'policy') throw new Error('unreachable');
    expect(report.mtaSts.mxMatches[0]).toEqual({ host: 'mx1.probe.test', ok: true, pattern: 'mx1.probe.test', reason: null });
    expect(report.mtaSts.mxMatches.slice(1).map((m) => [m.host, m.ok])).toEqual([
      ['mx2.probe.test', false],
      ['mx3.probe.test', false],
      ['mx4.probe.test', false],
      ['mx5.probe.test', false],
    ]);
    expect(report.mtaSts.mxMatches[1]!.reason).toMatch(/does not match the MTA-STS policy/);
  });

  it('no TXT record: MTA-STS none, with the reason', async () => {
    const report = await probeDomain('plainonly.test', { config });
    expect(report.mtaSts).toMatchObject({ status: 'none', invalid: false, reason: expect.stringContaining('_mta-sts.plainonly.test') });
    expect(report.mxs).toHaveLength(1);
  });

  it('policy fetch failure: MTA-STS error, the MX still probed', async () => {
    web.set('broken-sts.test', { status: 404, body: 'not here' });
    const report = await probeDomain('broken-sts.test', { config });
    expect(report.mtaSts).toMatchObject({ status: 'error', temporary: false, reason: expect.stringMatching(/HTTP 404/) });
    expect(report.mxs[0]).toMatchObject({ host: 'mx1.probe.test', tls: { protocol: 'TLSv1.3' } });
  });

  it('null MX: no usable MX, nothing probed', async () => {
    const report = await probeDomain('nullmx.test', { config });
    expect(report).toMatchObject({ usable: false, mxs: [], destination: { kind: 'null-mx', reason: expect.stringMatching(/RFC 7505/) } });
  });

  it('a domain that does not exist: no usable MX, the DNS answer as the reason', async () => {
    const report = await probeDomain('nowhere.test', { config });
    expect(report).toMatchObject({ usable: false, mxs: [], destination: { kind: 'error', reason: expect.stringMatching(/NXDOMAIN.*550 5\.1\.2/) } });
  });

  it('a static route is honoured and said so; MTA-STS is not applied to it', async () => {
    const progress: string[] = [];
    const report = await probeDomain('routed.test', { config, onProgress: (e) => progress.push(e) });
    const route = `${mxs.byName('mx1.probe.test').host}:${mxs.port}`;
    expect(report.destination).toEqual({ kind: 'route', route, reason: null });
    expect(report.mxs).toHaveLength(1);
    expect(report.mxs[0]).toMatchObject({ preference: null, reachable: true, tls: { protocol: 'TLSv1.3' } });
    expect(report.mtaSts).toMatchObject({ applied: false, notAppliedBecause: expect.stringMatching(/statically routed/) });
    expect(progress[0]).toMatch(/static route .* \(delivery\.routes\)/);
  });
});

const AT = Date.parse('2026-03-01T12:00:00Z');
const HOUR_MS = 60 * 60 * 1000;

interface FakeTimer {
  run: () => void;
  ms: number;
  cleared: boolean;
  fired: boolean;
}

function fakeTimers(): ProberTimers & { armed: FakeTimer[]; pending(): FakeTimer[]; fire(): void } {
  const armed: FakeTimer[] = [];
  const pending = () => armed.filter((t) => !t.cleared && !t.fired);
  return {
    armed,
    pending,
    set(run, ms) {
      const timer = { run, ms, cleared: false, fired: false };
      armed.push(timer);
      return timer;
    },
    clear(handle) {
      (handle as FakeTimer).cleared = true;
    },
    fire() {
      const [timer] = pending();
      if (!timer) throw new Error('no timer armed');
      timer.fired = true;
      timer.run();
    },
  };
}

function logCapture() {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger('info', { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
  return { logger, lines };
}

describe('startProber', () => {
  let mxs: MxSet;
  let dns: DnsStub;
  let config: Config;
  const deadIp = allocLoopbackIp();

  beforeAll(async () => {
    mxs = await startMxSet([
      { kind: 'tls13', name: 'mx.tls.test' },
      { kind: 'plain', name: 'mx.plain.test' },
      { kind: 'weak-protocol', name: 'mx.weak.test' },
    ]);
    const route = (name: string) => `${mxs.byName(name).host}:${mxs.port}`;
    dns = await startDnsStub({
      // The first MX is down: the prober records what the second (the one a delivery would use) offers.
      'fallback.test': {
        MX: [
          { preference: 10, exchange: 'down.fallback.test' },
          { preference: 20, exchange: 'mx.tls.test' },
        ],
      },
      'down.fallback.test': { A: [deadIp] },
      'mx.tls.test': { A: [mxs.byName('mx.tls.test').host] },
    });
    config = testConfig({
      delivery: {
        port: mxs.port,
        dns: { servers: [dns.server], timeout_ms: 2000 },
        routes: {
          'tls.test': route('mx.tls.test'),
          'plain.test': route('mx.plain.test'),
          'weak.test': route('mx.weak.test'),
          'dead.test': `${deadIp}:${mxs.port}`,
        },
      },
    });
  }, 30_000);

  afterAll(async () => {
    await mxs?.close();
    await dns?.close();
  });

  function prober(over: Partial<ProberOptions> & { domains: ProberOptions['domains'] }) {
    const timers = fakeTimers();
    const recorded: [string, ProbeObservation][] = [];
    const { logger, lines } = logCapture();
    const p = startProber({
      config,
      logger,
      intervalMs: 24 * HOUR_MS,
      now: () => AT,
      timers,
      record: async (domain, obs) => void recorded.push([domain, obs]),
      ...over,
    });
    return { p, timers, recorded, lines };
  }

  it('waits for the first run, probes each domain, records what its MX offered, then waits an interval', async () => {
    const { p, timers, recorded, lines } = prober({ domains: () => ['tls.test', 'plain.test', 'weak.test', 'dead.test', 'fallback.test'] });
    expect(timers.pending().map((t) => t.ms)).toEqual([FIRST_RUN_DELAY_MS]);
    expect(recorded).toEqual([]);

    timers.fire();
    await p.runNow(); // joins the run the timer started
    const byDomain = Object.fromEntries(recorded);
    expect(byDomain).toEqual({
      'tls.test': { at: AT, starttlsOffered: true, tlsOk: true },
      'plain.test': { at: AT, starttlsOffered: false, tlsOk: false },
      // STARTTLS offered, but only TLS 1.0/1.1: the handshake under our floor fails.
      'weak.test': { at: AT, starttlsOffered: true, tlsOk: false },
      'fallback.test': { at: AT, starttlsOffered: true, tlsOk: true },
    });
    expect(recorded).toHaveLength(4);
    // Nobody answered at dead.test: nothing to record, but it is logged.
    expect(lines).toContainEqual(expect.objectContaining({ event: 'domains.probe', domain: 'dead.test', result: 'unanswered', reason: expect.stringMatching(/ECONNREFUSED/) }));
    expect(lines).toContainEqual(expect.objectContaining({ event: 'domains.probe', result: 'run-finished', domains: 5, recorded: 4, unanswered: 1 }));
    // A probe sends no mail.
    expect(mxs.mxs.every((m) => m.received.length === 0)).toBe(true);

    expect(timers.pending().map((t) => t.ms)).toEqual([24 * HOUR_MS]);
    await p.stop();
    expect(timers.pending()).toEqual([]);
  });

  it('runs again on each interval, asking for the domains afresh', async () => {
    let asked = 0;
    const { p, timers, recorded } = prober({ domains: () => (++asked === 1 ? ['tls.test'] : ['plain.test']), firstDelayMs: 10 });
    expect(timers.pending()[0]!.ms).toBe(10);
    timers.fire();
    await p.runNow();
    timers.fire();
    await p.runNow();
    expect(recorded.map(([d]) => d)).toEqual(['tls.test', 'plain.test']);
    expect(timers.armed.map((t) => t.ms)).toEqual([10, 24 * HOUR_MS, 24 * HOUR_MS]);
    await p.stop();
  });

  it('runNow while a run is under way joins it; runNow replaces the pending timer', async () => {
    let asked = 0;
    const { p, timers, recorded } = prober({ domains: () => (asked++, ['tls.test']) });
    const first = p.runNow();
    expect(timers.armed[0]!.cleared).toBe(true);
    expect(p.runNow()).toBe(first);
    await first;
    expect(asked).toBe(1);
    expect(recorded).toHaveLength(1);
    expect(timers.pending().map((t) => t.ms)).toEqual([24 * HOUR_MS]);
    await p.stop();
  });

  it('after stop nothing runs, nothing is armed and nothing is recorded', async () => {
    let asked = 0;
    const { p, timers, recorded } = prober({ domains: async () => (asked++, ['tls.test', 'plain.test']) });
    const run = p.runNow();
    // Stopped while the run is still listing its domains: it probes nothing.
    await p.stop();
    await run;
    expect(recorded).toEqual([]);
    expect(timers.pending()).toEqual([]);
    await p.runNow();
    expect(asked).toBe(1);
  });

  it('a failure to record one domain does not stop the others', async () => {
    const recorded: string[] = [];
    const { p, lines } = prober({
      domains: () => ['tls.test', 'plain.test'],
      concurrency: 1,
      record: async (domain) => {
        if (domain === 'tls.test') throw new Error('database is locked');
        recorded.push(domain);
      },
    });
    await p.runNow();
    expect(recorded).toEqual(['plain.test']);
    expect(lines).toContainEqual(expect.objectContaining({ event: 'domains.probe', domain: 'tls.test', result: 'record-failed', err: 'database is locked' }));
    await p.stop();
  });
});

describe('domainsToProbe', () => {
  it('names from policies.domains and exact rule domains, plus domains attempted recently; no wildcards, no probe-only rows', () => {
    const config = testConfig({
      policies: {
        domains: { 'Legacy.Example': { mode: 'none' } },
        rules: [
          { name: 'bank', match: { recipient_domain: ['bank.example', '*.bank.example'] }, mode: 'forced' },
          { name: 'phi', match: { subject_tag: '[phi]' }, mode: 'forced' },
        ],
      },
    });
    const known = (domain: string, daysAgo: number, attempts = 1): DomainKnowledge => ({
      domain,
      tlsKnownSince: null,
      lastTlsAt: null,
      lastStarttlsAt: null,
      lastNoStarttlsAt: null,
      lastProbeAt: null,
      lastProbeStarttlsOffered: null,
      lastProbeTlsOk: null,
      lastAttemptAt: AT - daysAgo * 24 * HOUR_MS,
      attempts,
    });
    expect(domainsToProbe(config, [known('recent.example', 6), known('old.example', 8), known('bank.example', 30), known('probed-only.example', 1, 0)], { now: AT, recentDays: 7 })).toEqual([
      'bank.example',
      'legacy.example',
      'recent.example',
    ]);
  });

  it('includes the domains of a recipient_domains_file (not its wildcards)', () => {
    const file = join(mkdtempSync(join(tmpdir(), 'sealrelay-probe-list-')), 'partners.txt');
    writeFileSync(file, '# partners\npartner-a.example\n*.partner-b.example\nPartner-C.example  # upper case\n');
    const config = testConfig({ policies: { rules: [{ name: 'partners', match: { recipient_domains_file: file }, mode: 'forced' }] } });
    expect(domainsToProbe(config, [], { now: AT, recentDays: 7 })).toEqual(['partner-a.example', 'partner-c.example']);
  });
});
