// `sealrelay policy explain` as a real process: per recipient the decision, the
// rule that matched, every escalation and why; domain knowledge from the store.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { record } from '../store/contract.ts';
import { issueSmimeCert } from '../helpers/smime-certs.ts';
import { makeSandbox, message, runCli } from './harness.ts';

const box = makeSandbox(`policies:
  domains:
    legacy.example: { mode: none }
  rules:
    - name: bank
      match: { recipient_domain: [bank.example, "*.bank.example"] }
      mode: forced
      verification: ca
    - name: campaign
      match: { header: { name: X-Campaign, regex: "^spring" } }
      mode: tls-exclusive
  escalation:
    subject_tag: { tag: "[secure]", mode: forced }
    header: { name: X-SealRelay-Mode }
`);
afterAll(() => box.cleanup());

const explain = (...args: string[]) => runCli(['--config', box.configFile, 'policy', 'explain', '--from', 'app@clinic.example', ...args]);
const json = async (...args: string[]) => {
  const res = await explain(...args, '--json');
  expect(res.code, res.stderr).toBe(0);
  return res.stdout.trim().split('\n').map((l) => JSON.parse(l) as { recipient: string; decision: { mode: string; rule: string; verification: string; tlsExpected: boolean; reasons: string[] }; trace: { source: string; name: string; raised: boolean; why: string }[] });
};

describe('sealrelay policy explain', () => {
  it('a table per recipient with the rule, then every step and why', async () => {
    const res = await explain('--to', 'pat@east.bank.example', '--to', 'x@example.org', '--subject', '[SECURE] results');
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toMatch(/^pat@east\.bank\.example\s+forced\s+ca\s+TLSv1\.2, 128 bits\s+no\s+pgp → smime → portal\s+rule:bank$/m);
    expect(res.stdout).toMatch(/^x@example\.org\s+forced\s+none\s.*escalation:subject-tag$/m);
    // The fallback steps and whether the store holds a key for each.
    expect(res.stdout).toMatch(/^ {2}· key pgp: none held \(WKD may find one at delivery\)$/m);
    expect(res.stdout).toMatch(/^ {2}· key smime: none held$/m);
    // forced's default chain ends at the portal, which this config does not have: explain says the step is skipped.
    expect(res.stdout).toMatch(/^ {2}· portal: not configured \(portal\.master_keys, portal\.listen\): the step is skipped$/m);
    expect(res.stdout).toMatch(/↑ rule bank: recipient domain east\.bank\.example matches \*\.bank\.example → raised to forced/);
    expect(res.stdout).toMatch(/↑ subject-tag \[secure\]: subject carries \[secure\] → raised to forced/);
  });

  it('reads the header fields of a message file; an unauthenticated mode header is ignored and says so', async () => {
    const file = join(box.dir, 'msg.eml');
    writeFileSync(file, 'From: app@clinic.example\r\nSubject: spring news\r\nX-Campaign: spring-sale\r\nX-SealRelay-Mode: forced\r\n\r\nbody\r\n');
    const [r] = await json('--to', 'y@example.org', '--file', file);
    expect(r?.decision).toMatchObject({ mode: 'tls-exclusive', rule: 'rule:campaign' });
    expect(r?.trace.find((t) => t.source === 'header')?.why).toMatch(/ignored: only authenticated submitters/);
    const [a] = await json('--to', 'y@example.org', '--file', file, '--auth-user', 'app1');
    expect(a?.decision.mode).toBe('forced');
  });

  it('the base may be none for a named domain; escalations still raise it', async () => {
    expect((await json('--to', 'old@legacy.example'))[0]?.decision).toMatchObject({ mode: 'none', rule: 'domain:legacy.example' });
    expect((await json('--to', 'old@legacy.example', '--header', 'X-SealRelay-Mode: forced', '--auth-user', 'app1'))[0]?.decision.mode).toBe('forced');
  });

  it('shows domain knowledge from the store: a TLS-known domain expects TLS', async () => {
    const store = new SqliteStore(box.storePath);
    await store.enqueue(message('KN1', ['pat@known.example'], Date.now()));
    const [item] = await store.claim({ owner: 't', limit: 1, leaseMs: 60_000 });
    const tls = { protocol: 'TLSv1.3', cipher: 'TLS_AES_256_GCM_SHA384', bits: 256, authorized: true, authorizationError: null, peerCertSubject: null, peerCertFingerprint256: null };
    await store.finish([record(item!, { method: 'tls', starttlsOffered: true, tls })], [{ queueId: item!.queueId, seq: item!.seq, outcome: 'delivered', error: null }]);
    await store.close();
    const [r] = await json('--to', 'pat@known.example');
    expect(r?.decision).toMatchObject({ mode: 'opportunistic', tlsExpected: true });
    expect(r?.decision.reasons.join(' ')).toMatch(/known\.example is TLS-known/);
  });

  it('names the key each encryption step would use, never the key itself', async () => {
    const cert = issueSmimeCert({ email: 'sam@bank.example' });
    const file = join(box.dir, 'sam.pem');
    writeFileSync(file, cert.certPem);
    expect((await runCli(['--config', box.configFile, 'keys', 'import', file])).code).toBe(0);
    const res = await explain('--to', 'sam@bank.example');
    expect(res.stdout).toMatch(/^ {2}· key smime: [0-9A-F]{64} \(import, expires \d{4}-\d\d-\d\d\)$/m);
    const [r] = (await json('--to', 'sam@bank.example')) as unknown as { keys: { pgp: unknown; smime: { fingerprint: string; source: string } } }[];
    expect(r?.keys.pgp).toBeNull();
    expect(r?.keys.smime).toMatchObject({ fingerprint: expect.stringMatching(/^[0-9A-F]{64}$/), source: 'import' });
    expect(JSON.stringify(r)).not.toContain('BEGIN CERTIFICATE');
  });

  it('usage errors exit 64', async () => {
    expect((await explain()).code).toBe(64);
    expect((await explain('--to', 'a@b.example', '--header', 'nonsense')).code).toBe(64);
    expect((await explain('--to', 'a@b.example', '--file', '/nonexistent.eml')).code).toBe(64);
  });
});
