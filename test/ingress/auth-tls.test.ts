// AUTH (RFC 4954) and STARTTLS (RFC 3207) policy, as tables of SMTP exchanges in
// the style of smtp-server's protocol tests: each row is a fresh server and a
// fresh connection; every reply code (and where it matters its text) is checked.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { UserDirectory } from '../../src/ingress/users.ts';
import { b64, ingressConfig, plain, RawClient, runSteps, startTestIngress, testUsers, type Over, type Step } from './harness.ts';

let users: UserDirectory;
beforeAll(async () => {
  users = await testUsers({ app1: { password: 'good-pass' }, strict: { password: 'strict-pass', requireTls: true } });
});

interface Row {
  title: string;
  listener?: 'starttls' | 'required' | 'implicit';
  ingress?: Over;
  steps: Step[];
}

const EHLO: Step = ['EHLO app.clinic.test', 250];
const STARTTLS: Step = ['STARTTLS', 220];
/** 127.0.0.1 is outside relay_networks, so MAIL FROM shows whether AUTH took effect. */
const OUTSIDE = { relay_networks: ['192.0.2.0/24'] };

async function runRow(row: Row): Promise<void> {
  const tls = row.listener ?? 'starttls';
  const config = ingressConfig({ ...OUTSIDE, ...row.ingress, listeners: { submission: { host: '127.0.0.1', port: 0, tls } } });
  const t = await startTestIngress({ config, users });
  try {
    const client = await RawClient.open(t.port(), { implicitTls: tls === 'implicit' });
    try {
      await runSteps(client, row.steps);
    } finally {
      client.destroy();
    }
  } finally {
    await t.close();
  }
}

describe('RFC 4954 AUTH: only inside TLS, except from auth_plaintext_networks', () => {
  const rows: Row[] = [
    { title: 'AUTH PLAIN over plaintext → 538 5.7.11', steps: [EHLO, [plain('app1', 'good-pass'), 538, /^5\.7\.11 Encryption required/], ['MAIL FROM:<a@clinic.test>', 554, /^5\.7\.1 Relay access denied/]] },
    { title: 'AUTH LOGIN over plaintext → 538 before any SASL prompt (no 334)', steps: [EHLO, ['AUTH LOGIN', 538, /^5\.7\.11/]] },
    { title: 'AUTH PLAIN without initial response over plaintext → 538 before the prompt', steps: [EHLO, ['AUTH PLAIN', 538, /^5\.7\.11/]] },
    { title: 'AUTH PLAIN after STARTTLS → 235, then MAIL relays', steps: [EHLO, STARTTLS, EHLO, [plain('app1', 'good-pass'), 235], ['MAIL FROM:<a@clinic.test>', 250], ['RCPT TO:<p@example.test>', 250]] },
    {
      title: 'AUTH LOGIN after STARTTLS → 334, 334, 235',
      steps: [EHLO, STARTTLS, EHLO, ['AUTH LOGIN', 334], [b64('app1'), 334], [b64('good-pass'), 235], ['MAIL FROM:<a@clinic.test>', 250]],
    },
    { title: 'implicit TLS listener: AUTH at once → 235', listener: 'implicit', steps: [EHLO, [plain('app1', 'good-pass'), 235], ['MAIL FROM:<a@clinic.test>', 250]] },
    { title: 'wrong password → 535 5.7.8, still not allowed to relay', steps: [EHLO, STARTTLS, EHLO, [plain('app1', 'bad-pass'), 535, /^5\.7\.8 Authentication credentials invalid/], ['MAIL FROM:<a@clinic.test>', 554]] },
    { title: 'unknown user → 535 5.7.8 (same as a wrong password)', steps: [EHLO, STARTTLS, EHLO, [plain('ghost', 'good-pass'), 535, /^5\.7\.8/]] },
    { title: 'auth_plaintext_networks: AUTH over plaintext → 235', ingress: { auth_plaintext_networks: ['127.0.0.1/32'] }, steps: [EHLO, [plain('app1', 'good-pass'), 235], ['MAIL FROM:<a@clinic.test>', 250]] },
    { title: 'auth_plaintext_networks elsewhere: still 538', ingress: { auth_plaintext_networks: ['10.0.0.0/8'] }, steps: [EHLO, [plain('app1', 'good-pass'), 538]] },
    { title: 'a second AUTH in a session → 503', steps: [EHLO, STARTTLS, EHLO, [plain('app1', 'good-pass'), 235], [plain('app1', 'good-pass'), 503]] },
    { title: 'unsupported mechanism → 504', steps: [EHLO, STARTTLS, EHLO, ['AUTH CRAM-MD5', 504]] },
  ];
  test.each(rows.map((r) => [r.title, r] as const))('%s', async (_t, row) => runRow(row));
});

describe('RFC 3207 §4: listeners that require TLS, require_tls_networks, per-account require_tls', () => {
  const rows: Row[] = [
    { title: 'required: MAIL before STARTTLS → 530 5.7.0 even from relay_networks', listener: 'required', ingress: { relay_networks: ['127.0.0.1/32'] }, steps: [EHLO, ['MAIL FROM:<a@clinic.test>', 530, /^5\.7\.0 Must issue a STARTTLS command first/]] },
    { title: 'required: AUTH before STARTTLS → 530 5.7.0 even from auth_plaintext_networks', listener: 'required', ingress: { auth_plaintext_networks: ['127.0.0.1/32'] }, steps: [EHLO, [plain('app1', 'good-pass'), 530, /^5\.7\.0 Must issue a STARTTLS/]] },
    { title: 'required: after STARTTLS, MAIL from relay_networks → 250', listener: 'required', ingress: { relay_networks: ['127.0.0.1/32'] }, steps: [EHLO, STARTTLS, EHLO, ['MAIL FROM:<a@clinic.test>', 250]] },
    { title: 'required: after STARTTLS, AUTH → 235', listener: 'required', steps: [EHLO, STARTTLS, EHLO, [plain('app1', 'good-pass'), 235], ['MAIL FROM:<a@clinic.test>', 250]] },
    { title: 'require_tls_networks on a starttls listener: plaintext MAIL → 530', ingress: { relay_networks: ['127.0.0.1/32'], require_tls_networks: ['127.0.0.0/8'] }, steps: [EHLO, ['MAIL FROM:<a@clinic.test>', 530, /^5\.7\.0/]] },
    { title: 'require_tls_networks: after STARTTLS → 250', ingress: { relay_networks: ['127.0.0.1/32'], require_tls_networks: ['127.0.0.0/8'] }, steps: [EHLO, STARTTLS, EHLO, ['MAIL FROM:<a@clinic.test>', 250]] },
    { title: 'require_tls_networks elsewhere: plaintext MAIL → 250', ingress: { relay_networks: ['127.0.0.1/32'], require_tls_networks: ['10.0.0.0/8'] }, steps: [EHLO, ['MAIL FROM:<a@clinic.test>', 250]] },
    {
      title: 'account with require_tls, authenticated over plaintext (allowed network): MAIL → 530',
      ingress: { auth_plaintext_networks: ['127.0.0.1/32'] },
      steps: [EHLO, [plain('strict', 'strict-pass'), 235], ['MAIL FROM:<a@clinic.test>', 530, /^5\.7\.0/]],
    },
    { title: 'account with require_tls, over STARTTLS: MAIL → 250', steps: [EHLO, STARTTLS, EHLO, [plain('strict', 'strict-pass'), 235], ['MAIL FROM:<a@clinic.test>', 250]] },
    {
      title: 'account without require_tls over plaintext (allowed network): MAIL → 250',
      ingress: { auth_plaintext_networks: ['127.0.0.1/32'] },
      steps: [EHLO, [plain('app1', 'good-pass'), 235], ['MAIL FROM:<a@clinic.test>', 250]],
    },
    {
      title: 'RFC 3207 §4.2: AUTH from before STARTTLS is forgotten after it',
      ingress: { auth_plaintext_networks: ['127.0.0.1/32'] },
      steps: [EHLO, [plain('app1', 'good-pass'), 235], STARTTLS, EHLO, ['MAIL FROM:<a@clinic.test>', 554, /^5\.7\.1/]],
    },
    { title: 'STARTTLS is not offered twice → 503', steps: [EHLO, STARTTLS, EHLO, ['STARTTLS', 503]] },
    { title: 'implicit listener: STARTTLS is not a command there', listener: 'implicit', steps: [EHLO, ['STARTTLS', 500]] },
  ];
  test.each(rows.map((r) => [r.title, r] as const))('%s', async (_t, row) => runRow(row));
});

describe('AUTH failure throttle (per client IP)', () => {
  let t: Awaited<ReturnType<typeof startTestIngress>>;
  beforeAll(async () => {
    t = await startTestIngress({ config: ingressConfig({ ...OUTSIDE, auth_failure_limit: 3, auth_failure_window_seconds: 60 }), users });
  });
  afterAll(() => t.close());

  test('after auth_failure_limit failures, even the right password gets 454 4.7.0; other connections too', async () => {
    const c = await RawClient.open(t.port());
    await runSteps(c, [
      EHLO,
      STARTTLS,
      EHLO,
      [plain('app1', 'wrong-1'), 535],
      [plain('app1', 'wrong-2'), 535],
      [plain('ghost', 'wrong-3'), 535],
      [plain('app1', 'good-pass'), 454, /^4\.7\.0 Too many failed authentication attempts/],
      // checked before the SASL exchange: no 334 prompt, the password is never asked for
      ['AUTH LOGIN', 454],
    ]);
    c.destroy();
    const d = await RawClient.open(t.port());
    await runSteps(d, [EHLO, STARTTLS, EHLO, [plain('app1', 'good-pass'), 454]]);
    d.destroy();

    const failed = t.logs.filter((l) => l.event === 'ingress.auth_failed');
    expect(failed).toHaveLength(3);
    expect(failed[0]).toMatchObject({ user: 'app1', ip: '127.0.0.1', method: 'PLAIN', listener: 'submission' });
    expect(failed[2]).toMatchObject({ user: 'ghost' });
    expect(t.logs.filter((l) => l.event === 'ingress.auth_throttled').length).toBeGreaterThanOrEqual(2);
    for (const secret of ['wrong-1', 'wrong-2', 'wrong-3', 'good-pass', b64('\0app1\0wrong-1')]) {
      expect(t.rawLogs.join('\n')).not.toContain(secret);
    }
  });
});
