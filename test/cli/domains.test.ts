// `sealrelay domains`: list, show (text and --json) and forget, run as a process on
// a store seeded with a delivery over TLS, a plaintext delivery and probes — above
// all that the last probe and its handshake result are shown.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { DomainKnowledge } from '../../src/store/store.ts';
import { claimAll, HOUR, lines, makeSandbox, message, record, runCli, withStore, type Sandbox } from './harness.ts';

let box: Sandbox;
let now: number;

// tls.example: delivered over TLS 2h ago, probed 1h ago with a working handshake.
// plain.example: delivered in plaintext 2h ago (no STARTTLS), never probed.
// probed.example: only a probe (30 min ago) that found STARTTLS but no handshake meeting the floor.
beforeEach(async () => {
  box = makeSandbox();
  now = Date.now();
  await withStore(box.storePath, async (store) => {
    await store.enqueue(message('QA', ['a@tls.example', 'b@plain.example'], now - 3 * HOUR));
    await claimAll(store);
    await store.finish(
      [
        record({ queueId: 'QA', seq: 0, recipient: 'a@tls.example', attempt: 1, at: now - 2 * HOUR, outcome: 'delivered' }),
        record({ queueId: 'QA', seq: 1, recipient: 'b@plain.example', attempt: 1, at: now - 2 * HOUR, outcome: 'delivered', fields: { method: 'plaintext', starttlsOffered: false, tls: null } }),
      ],
      [
        { queueId: 'QA', seq: 0, outcome: 'delivered', error: null },
        { queueId: 'QA', seq: 1, outcome: 'delivered', error: null },
      ],
    );
    await store.recordProbe('tls.example', { at: now - HOUR, starttlsOffered: true, tlsOk: true });
    await store.recordProbe('probed.example', { at: now - HOUR / 2, starttlsOffered: true, tlsOk: false });
    await store.recordProbe('nostarttls.example', { at: now - HOUR / 4, starttlsOffered: false, tlsOk: false });
  });
});

afterEach(() => box.cleanup());

const domains = (...args: string[]) => runCli(['-c', box.configFile, 'domains', ...args]);

describe('sealrelay domains list', () => {
  it('one row per domain with its last probe and whether TLS worked, or why not', async () => {
    const res = await domains();
    expect(res.code).toBe(0);
    const [header, noStarttls, plain, probed, tls, ...rest] = lines(res.stdout);
    expect(rest).toEqual([]);
    expect(header?.split(/\s{2,}/)).toEqual(['DOMAIN', 'TLS-KNOWN', 'LAST TLS', 'LAST STARTTLS', 'LAST NO STARTTLS', 'ATTEMPTS', 'LAST PROBE']);
    expect(noStarttls).toMatch(/^nostarttls\.example\s+no\s+-\s+-\s+15m ago\s+0\s+15m ago, no STARTTLS$/);
    expect(plain).toMatch(/^plain\.example\s+no\s+-\s+-\s+2h ago\s+1\s+-$/);
    expect(probed).toMatch(/^probed\.example\s+no\s+-\s+30m ago\s+-\s+0\s+30m ago, TLS failed$/);
    expect(tls).toMatch(/^tls\.example\s+since \S+\s+2h ago\s+1h ago\s+-\s+1\s+1h ago, TLS ok$/);
  });

  it('--json carries the last probe on every line (null when none ran)', async () => {
    const res = await domains('list', '--json');
    const all = lines(res.stdout).map((l) => JSON.parse(l) as DomainKnowledge);
    expect(all.map((d) => [d.domain, d.lastProbeAt, d.lastProbeStarttlsOffered, d.lastProbeTlsOk])).toEqual([
      ['nostarttls.example', now - HOUR / 4, false, false],
      ['plain.example', null, null, null],
      ['probed.example', now - HOUR / 2, true, false],
      ['tls.example', now - HOUR, true, true],
    ]);
  });
});

describe('sealrelay domains show', () => {
  it('prints the last probe and whether its TLS handshake succeeded, or why not', async () => {
    const tls = await domains('show', 'TLS.example');
    expect(tls.code).toBe(0);
    expect(tls.stdout).toMatch(/^TLS-known:\s+yes, since /m);
    expect(tls.stdout).toContain(`last probe:        ${new Date(now - HOUR).toISOString().slice(0, 19)}Z, TLS handshake succeeded at the floor\n`);
    const probed = await domains('show', 'probed.example');
    expect(probed.stdout).toMatch(/^last probe:\s+\S+Z, STARTTLS offered, but no handshake at the floor \(see the domains\.probe log line\)$/m);
    expect((await domains('show', 'nostarttls.example')).stdout).toMatch(/^last probe:\s+\S+Z, STARTTLS not offered$/m);
    expect(probed.stdout).toMatch(/^TLS-known:\s+no$/m);
    expect((await domains('show', 'plain.example')).stdout).toMatch(/^last probe:\s+-$/m);
  });

  it('--json is the domain knowledge as one object', async () => {
    const shown = JSON.parse((await domains('show', 'probed.example', '--json')).stdout) as DomainKnowledge;
    expect(shown).toMatchObject({ domain: 'probed.example', tlsKnownSince: null, attempts: 0, lastProbeAt: now - HOUR / 2, lastProbeStarttlsOffered: true, lastProbeTlsOk: false });
  });

  it('an unknown domain exits 1; forget removes one, probe included', async () => {
    expect(await domains('show', 'nowhere.example')).toMatchObject({ code: 1, stdout: '' });
    expect(await domains('forget', 'tls.example')).toMatchObject({ code: 0, stdout: 'forgot tls.example\n' });
    expect(await withStore(box.storePath, (s) => s.getDomain('tls.example'))).toBeNull();
  });
});
