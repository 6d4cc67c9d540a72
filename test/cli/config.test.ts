// `sealrelay config check` and config errors in other commands: every problem is
// reported as file:line:col: key: message; `start` exits 78 (EX_CONFIG). The check
// tries every file the config names, as start does.
import { generateKeyPairSync } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { formatMasterKey, generateMasterKey } from '../../src/portal/master-keys.ts';
import { makeSandbox, runCli, type Sandbox } from './harness.ts';

let box: Sandbox;
beforeEach(() => {
  box = makeSandbox();
});
afterEach(() => box.cleanup());

function writeConfig(name: string, lines: string[]): string {
  const file = join(box.dir, name);
  writeFileSync(file, lines.join('\n'));
  return file;
}

describe('sealrelay config check', () => {
  it('prints OK for a valid file (given with -c, or as the argument)', async () => {
    expect(await runCli(['-c', box.configFile, 'config', 'check'])).toMatchObject({ code: 0, stdout: `OK: ${box.configFile}\n`, stderr: '' });
    expect(await runCli(['config', 'check', box.configFile])).toMatchObject({ code: 0, stdout: `OK: ${box.configFile}\n` });
  });

  it('takes the file from SEALRELAY_CONFIG when there is no -c', async () => {
    const res = await runCli(['config', 'check'], { env: { SEALRELAY_CONFIG: box.configFile } });
    expect(res).toMatchObject({ code: 0, stdout: `OK: ${box.configFile}\n` });
  });

  it('names the line and key of an unknown key', async () => {
    const file = writeConfig('unknown.yaml', [
      'ingress:', //
      '  listeners:',
      '    starttls: { port: 0 }',
      '  relay_netwroks: [10.0.0.0/8]',
    ]);
    const res = await runCli(['config', 'check', file]);
    expect(res.code).toBe(1);
    expect(res.stdout).toBe('');
    expect(res.stderr).toBe(`${file}:4:3: ingress.relay_netwroks: unknown key\n`);
  });

  it('names the line of bad YAML indentation', async () => {
    const file = writeConfig('indent.yaml', [
      'store:', //
      '  path: data/x.db',
      ' driver: sqlite',
      'ingress:',
      '  listeners:',
      '    starttls: { port: 0 }',
    ]);
    const res = await runCli(['config', 'check', file]);
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:3:\\d+: `));
  });

  it('reports every problem, one per line', async () => {
    const file = writeConfig('two.yaml', [
      'ingress:', //
      '  listeners:',
      '    starttls: { port: 70000 }',
      'logging:',
      '  level: loud',
    ]);
    const res = await runCli(['config', 'check', file]);
    expect(res.code).toBe(1);
    const problems = res.stderr.trim().split('\n');
    expect(problems).toHaveLength(2);
    expect(problems[0]).toMatch(/:3:\d+: ingress\.listeners\.starttls\.port: /);
    expect(problems[1]).toMatch(/:5:\d+: logging\.level: /);
  });

  it('reports a missing file', async () => {
    const res = await runCli(['config', 'check', join(box.dir, 'nope.yaml')]);
    expect(res.code).toBe(1);
    expect(res.stderr).toContain('nope.yaml: cannot read');
  });
});

/** `config check` on the sandbox config plus `lines`; the problems it printed, one per line. */
async function checkWith(lines: string[]): Promise<{ code: number; problems: string[]; stdout: string }> {
  const file = writeConfig('check.yaml', [`store: { path: ${JSON.stringify(box.storePath)} }`, ...lines]);
  const res = await runCli(['config', 'check', file]);
  return { code: res.code, problems: res.stderr.split('\n').filter(Boolean), stdout: res.stdout };
}

describe('config check tries every file start would read', () => {
  const listeners = ['ingress:', '  listeners:', '    starttls: { port: 0 }'];

  it('a missing certificate pair under a production name: both settings, their files and lines', async () => {
    const res = await checkWith([...listeners, '  cert_file: /etc/ssl/relay.example.crt', '  key_file: /etc/ssl/relay.example.key']);
    expect(res.code).toBe(1);
    expect(res.problems).toEqual([
      expect.stringMatching(/check\.yaml:5:3: ingress\.cert_file: \/etc\/ssl\/relay\.example\.crt: no such file \(.*--dev-cert/),
      expect.stringMatching(/check\.yaml:6:3: ingress\.key_file: \/etc\/ssl\/relay\.example\.key: no such file/),
    ]);
    // As start --dev-cert would see it: the pair would be generated.
    const file = join(box.dir, 'check.yaml');
    expect(await runCli(['config', 'check', '--dev-cert', file])).toMatchObject({ code: 0, stdout: `OK: ${file}\n` });
  });

  it('a missing DKIM key file, crypto key file and recipient_domains_file: each named with its line', async () => {
    const res = await checkWith([
      ...listeners, // lines 2-4
      'policies:',
      '  rules:',
      '    - name: lab-results',
      '      match: { sender: results@lab.example }',
      '      mode: forced',
      '    - name: partners',
      '      match:',
      '        recipient_domains_file: lists/partners.txt',
      '      mode: forced',
      'crypto:',
      '  pgp:',
      '    archive_key_file: keys/archive.asc',
      'dkim:',
      '  domains:',
      '    clinic.example:',
      '      selector: s1',
      '      key_file: keys/dkim-clinic.example.key',
    ]);
    expect(res.code).toBe(1);
    const d = box.dir;
    expect(res.problems).toEqual([
      `${d}/check.yaml:12:9: policies.rules[partners].match.recipient_domains_file: ${d}/lists/partners.txt: no such file`,
      `${d}/check.yaml:16:5: crypto.pgp.archive_key_file: ${d}/keys/archive.asc: no such file`,
      `${d}/check.yaml:21:7: dkim.domains.clinic.example.key_file: ${d}/keys/dkim-clinic.example.key: no such file`,
    ]);
  });

  it('a domains file with a line that is not a domain: that file and line; a good config with real files passes', async () => {
    mkdirSync(join(box.dir, 'keys'));
    writeFileSync(join(box.dir, 'partners.txt'), '# partners\nbank.example\n*.bank.example\nsomeone@partner.example\n');
    writeFileSync(join(box.dir, 'keys', 'dkim.key'), generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }));
    const rule = ['policies:', '  rules:', '    - { name: partners, match: { recipient_domains_file: partners.txt }, mode: forced }'];
    const dkim = ['dkim:', '  domains:', '    clinic.example: { selector: s1, key_file: keys/dkim.key }'];
    const bad = await checkWith([...listeners, ...rule, ...dkim]);
    expect(bad.code).toBe(1);
    expect(bad.problems).toEqual([`${box.dir}/partners.txt:4:1: policies.rules[partners].match.recipient_domains_file: not a domain or *.domain: "someone@partner.example"`]);
    writeFileSync(join(box.dir, 'partners.txt'), '# partners\nbank.example\n*.bank.example\n');
    expect(await checkWith([...listeners, ...rule, ...dkim])).toMatchObject({ code: 0, problems: [] });
  });

  it('portal master keys are read as start reads them: a key file others may read, an unset variable; a good key passes', async () => {
    const key = formatMasterKey(generateMasterKey());
    writeFileSync(join(box.dir, 'portal.key'), `${key}\n`, { mode: 0o644 });
    const portal = ['portal:', '  master_keys:', '    - { id: k1, file: portal.key }', '    - { id: k2, env: SEALRELAY_TEST_PORTAL_K2 }', '  current_key: k1'];
    const bad = await checkWith([...listeners, ...portal]);
    expect(bad.code).toBe(1);
    expect(bad.problems).toEqual([expect.stringMatching(/check\.yaml:\d+:\d+: portal\.master_keys(\.0|\[k1\])\.file: .*portal\.key: mode 0644 lets group or others read it; chmod 600/)]);
    chmodSync(join(box.dir, 'portal.key'), 0o600);
    const unset = await checkWith([...listeners, ...portal]);
    expect(unset.problems).toEqual([expect.stringMatching(/portal\.master_keys(\.1|\[k2\])\.env: environment variable SEALRELAY_TEST_PORTAL_K2 is not set/)]);
    expect(unset.problems.join('\n')).not.toContain(key);
    expect(await checkWith([...listeners, 'portal:', '  master_keys: [{ id: k1, file: portal.key }]', '  current_key: k1'])).toMatchObject({ code: 0, problems: [] });
  });

  it('the queue body keys (store.encryption) are read as the store thread reads them: a key file others may read, an unset variable', async () => {
    writeFileSync(join(box.dir, 'queue.key'), formatMasterKey(generateMasterKey()), { mode: 0o640 });
    const check = async (encryption: string[]) => {
      const file = writeConfig('check.yaml', ['store:', `  path: ${JSON.stringify(box.storePath)}`, '  encryption:', ...encryption, ...listeners]);
      const res = await runCli(['config', 'check', file]);
      return { code: res.code, problems: res.stderr.split('\n').filter(Boolean) };
    };
    const keys = ['    keys:', '      - { id: q1, file: queue.key }', '      - { id: q2, env: SEALRELAY_TEST_QUEUE_Q2 }', '    current_key: q1'];
    const bad = await check(keys);
    expect(bad.problems).toEqual([expect.stringMatching(/check\.yaml:5:\d+: store\.encryption\.keys(\.0|\[q1\])\.file: .*queue\.key: mode 0640 lets group or others read it; chmod 600/)]);
    chmodSync(join(box.dir, 'queue.key'), 0o600);
    const unset = await check(keys);
    expect(unset.problems).toEqual([expect.stringMatching(/store\.encryption\.keys(\.1|\[q2\])\.env: environment variable SEALRELAY_TEST_QUEUE_Q2 is not set/)]);
    expect(await check(['    keys: [{ id: q1, file: queue.key }]', '    current_key: q1'])).toEqual({ code: 0, problems: [] });
  });

  it('a CA bundle that is not one, and a DKIM key that is not a key', async () => {
    writeFileSync(join(box.dir, 'ca.pem'), 'not a certificate\n');
    writeFileSync(join(box.dir, 'dkim.key'), 'not a key\n');
    const res = await checkWith([...listeners, 'tls:', '  ca_file: ca.pem', 'dkim:', '  domains:', '    clinic.example: { selector: s1, key_file: dkim.key }']);
    expect(res.code).toBe(1);
    expect(res.problems).toEqual([
      `${box.dir}/check.yaml:6:3: tls.ca_file: ${box.dir}/ca.pem: no PEM certificate in it`,
      expect.stringMatching(new RegExp(`check\\.yaml:9:37: dkim\\.domains\\.clinic\\.example\\.key_file: ${box.dir}/dkim\\.key: .*PEM`)),
    ]);
  });
});

describe('which config file', () => {
  it('SEALRELAY_CONFIG is honoured, and --config wins over it', async () => {
    const broken = writeConfig('broken.yaml', ['nonsense: 1']);
    expect(await runCli(['config', 'check'], { env: { SEALRELAY_CONFIG: broken } })).toMatchObject({ code: 1, stderr: expect.stringContaining('nonsense: unknown key') });
    expect(await runCli(['-c', box.configFile, 'config', 'check'], { env: { SEALRELAY_CONFIG: broken } })).toMatchObject({ code: 0, stdout: `OK: ${box.configFile}\n` });
  });

  it('relative paths in the config are read from its directory, whatever the working directory', async () => {
    writeFileSync(join(box.dir, 'partners.txt'), 'bank.example\n');
    const file = writeConfig('relative.yaml', [
      'ingress:',
      '  listeners: { starttls: { port: 0 } }',
      '  cert_file: certs/sealrelay-dev.crt',
      '  key_file: certs/sealrelay-dev.key',
      'policies:',
      '  rules:',
      '    - { name: partners, match: { recipient_domains_file: partners.txt }, mode: forced }',
    ]);
    const elsewhere = mkdtempSync(join(tmpdir(), 'sealrelay-cwd-'));
    try {
      expect(await runCli(['-c', file, 'config', 'check'], { cwd: elsewhere })).toMatchObject({ code: 0, stdout: `OK: ${file}\n` });
      const explained = await runCli(['-c', file, 'policy', 'explain', '--from', 'a@clinic.example', '--to', 'x@bank.example', '--json'], { cwd: elsewhere });
      expect(explained.code).toBe(0);
      expect(JSON.parse(explained.stdout)).toMatchObject({ decision: { mode: 'forced', rule: 'rule:partners' } });
    } finally {
      rmSync(elsewhere, { recursive: true, force: true });
    }
  });
});

describe('config errors in other commands', () => {
  it('policy explain with a missing recipient_domains_file: a config error (78) naming the setting and line, no stack', async () => {
    const file = writeConfig('explain.yaml', [
      'ingress:',
      '  listeners: {}',
      'policies:',
      '  rules:',
      '    - name: partners',
      '      match:',
      '        recipient_domains_file: /nonexistent/partners.txt',
      '      mode: forced',
    ]);
    const res = await runCli(['-c', file, 'policy', 'explain', '--from', 'a@clinic.example', '--to', 'x@bank.example']);
    expect(res.code).toBe(78);
    expect(res.stdout).toBe('');
    expect(res.stderr).toBe(`${file}:7:9: policies.rules[partners].match.recipient_domains_file: /nonexistent/partners.txt: no such file\n`);
  });

  it('start exits 78 (EX_CONFIG) with the problems on stderr, before listening', async () => {
    const file = writeConfig('bad.yaml', ['ingress:', '  listeners:', '    starttls: { port: 0 }', '  max_recipients: none']);
    const res = await runCli(['-c', file, 'start']);
    expect(res.code).toBe(78);
    expect(res.stdout).toBe('');
    expect(res.stderr).toMatch(/bad\.yaml:4:3: ingress\.max_recipients: /);
  });

  it('queue exits 78 too', async () => {
    const file = writeConfig('bad.yaml', ['ingress:', '  listeners: {}', '  bogus: 1']);
    const res = await runCli(['-c', file, 'queue']);
    expect(res.code).toBe(78);
    expect(res.stderr).toContain('ingress.bogus: unknown key');
  });
});
