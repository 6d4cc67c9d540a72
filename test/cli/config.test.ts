// `sealrelay config check` and config errors in other commands: every problem is
// reported as file:line:col: key: message; `start` exits 78 (EX_CONFIG).
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
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

describe('config errors in other commands', () => {
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
