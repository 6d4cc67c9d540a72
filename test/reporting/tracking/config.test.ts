// Tracking's settings: a rule that asks for tracking without the public listener or
// the key is a config error at that rule's `tracking:` line; the key is read from a
// file (chmod 600) or the environment and never echoed; decisions carry a rule's
// terms, joined across rules (on if any asks) and off by default.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../../../src/config/load.ts';
import { configSchema } from '../../../src/config/schema.ts';
import { createPolicy } from '../../../src/policy/decide.ts';
import { messageContext } from '../../../src/policy/message-context.ts';
import { formatMasterKey, generateMasterKey } from '../../../src/portal/master-keys.ts';
import { loadTrackingKey } from '../../../src/reporting/tracking/key.ts';

const base = 'ingress:\n  listeners:\n    starttls:\n      port: 2525\n';
const rules = [
  'policies:',
  '  rules:',
  '    - name: plain',
  '      match: { sender: other@clinic.example }',
  '      mode: forced',
  '    - name: news',
  '      match: { sender: news@clinic.example }',
  '      mode: opportunistic',
  '      tracking: { clicks: true }',
  '',
].join('\n');

function problemsOf(text: string) {
  try {
    parseConfig(text, 'test.yaml');
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems;
  }
  throw new Error('expected a ConfigError');
}

describe('tracking config', () => {
  it('a rule asking for tracking without the listener or the key is an error at its line', () => {
    const problems = problemsOf(base + rules);
    expect(problems.map((p) => [p.line, p.key])).toEqual([
      [13, 'policies.rules[news].tracking'],
      [13, 'policies.rules[news].tracking'],
    ]);
    expect(problems.map((p) => p.message).join('\n')).toMatch(/portal\.listen[^]*tracking\.key/);
    const ok = parseConfig(`${base}${rules}portal: { listen: 8443 }\ntracking: { key: { env: TRACK_KEY } }\n`, 'test.yaml');
    expect(ok.tracking).toMatchObject({ key: { env: 'TRACK_KEY' }, machine_click_seconds: 10, machine_open_seconds: 2, public_url: null });
    // A rule that turns everything off asks for nothing.
    expect(() => parseConfig(base + rules.replace('{ clicks: true }', '{ clicks: false }'), 'test.yaml')).not.toThrow();
    expect(problemsOf(`${base}tracking: { key: { env: A, file: b } }\n`)[0]?.key).toBe('tracking.key');
    expect(problemsOf(`${base}tracking: { machine_click_seconds: -1 }\n`)[0]?.key).toBe('tracking.machine_click_seconds');
  });

  it('reads the key from a private file or the environment, naming the setting and never the key', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sealrelay-tracking-key-'));
    const key = generateMasterKey();
    const file = join(dir, 'k');
    writeFileSync(file, formatMasterKey(key), { mode: 0o600 });
    const cfg = (k: object | null) => configSchema.parse({ ingress: { listeners: {} }, tracking: { key: k } }).tracking;
    expect(loadTrackingKey(cfg(null), {})).toBeNull();
    expect(loadTrackingKey(cfg({ file }), {})!.equals(key)).toBe(true);
    expect(loadTrackingKey(cfg({ env: 'K' }), { K: formatMasterKey(key) })!.equals(key)).toBe(true);
    const open = join(dir, 'open');
    writeFileSync(open, formatMasterKey(key), { mode: 0o644 });
    expect(() => loadTrackingKey(cfg({ file: open }), {})).toThrow(/tracking\.key\.file.*chmod 600/);
    expect(() => loadTrackingKey(cfg({ file: join(dir, 'none') }), {})).toThrow(/no such file/);
    expect(() => loadTrackingKey(cfg({ env: 'K' }), {})).toThrow(/tracking\.key\.env \(K\).*not set/);
    const secretish = 'not-a-key-but-secret-text';
    expect(() => loadTrackingKey(cfg({ env: 'K' }), { K: secretish })).toThrow(/tracking\.key\.env/);
    try {
      loadTrackingKey(cfg({ env: 'K' }), { K: secretish });
    } catch (err) {
      expect((err as Error).message).not.toContain(secretish);
    }
  });

  it('decisions carry the terms: off by default, on where any matching rule asks, transactional likewise', () => {
    const config = configSchema.parse({
      ingress: { listeners: {} },
      portal: { listen: 8443 },
      tracking: { key: { env: 'K' } },
      policies: {
        rules: [
          { name: 'news', match: { sender_domain: 'clinic.example' }, mode: 'opportunistic', tracking: { opens: true } },
          { name: 'links', match: { recipient_domain: 'patient.example' }, mode: 'forced', tracking: { clicks: true, unsubscribe: true } },
          { name: 'receipts', match: { sender: 'receipts@clinic.example' }, mode: 'opportunistic', transactional: true },
        ],
      },
    });
    const policy = createPolicy(config);
    const ctx = (sender: string) => messageContext({ sender, authUser: null, headerBlock: 'Subject: x\r\n', subject: 'x', dlpHits: [], origin: null });
    expect(policy.decide('a@else.example', ctx('x@other.example'))).toMatchObject({ tracking: { opens: false, clicks: false, unsubscribe: false }, transactional: false });
    expect(policy.decide('a@patient.example', ctx('news@clinic.example'))).toMatchObject({ mode: 'forced', tracking: { opens: true, clicks: true, unsubscribe: true }, transactional: false });
    expect(policy.decide('a@else.example', ctx('receipts@clinic.example'))).toMatchObject({ tracking: { opens: true, clicks: false, unsubscribe: false }, transactional: true });
  });
});
