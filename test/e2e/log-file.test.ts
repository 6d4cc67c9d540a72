// `sealrelay start` with logging.file: the log goes to that file (mode 0640), not to
// stdout; after logrotate moves it away, `systemctl reload` (SIGHUP) makes the relay
// write a new file at the configured path. And a log file in a directory that does
// not exist is a config error naming logging.file, before anything starts.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, renameSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { killIfRunning, writeConfigFile } from '../helpers/relay-process.ts';
import { testConfig } from '../helpers/relay.ts';

const ROOT = join(import.meta.dirname, '..', '..');
type Line = Record<string, unknown>;

const jsonLines = (file: string): Line[] =>
  existsSync(file)
    ? readFileSync(file, 'utf8')
        .split('\n')
        .slice(0, -1)
        .map((l) => JSON.parse(l) as Line)
    : [];

async function waitFor<T>(what: string, find: () => T | undefined, stderr: () => string, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = find();
    if (found !== undefined) return found;
    if (Date.now() > deadline) throw new Error(`no ${what} within ${timeoutMs} ms; stderr: ${stderr().slice(0, 2000)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function startRelay(configFile: string) {
  const proc = spawn(process.execPath, [join(ROOT, 'bin', 'sealrelay.js'), '--config', configFile, 'start'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  proc.stdout!.on('data', (c: Buffer) => (stdout += c.toString()));
  proc.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  const exited = new Promise<number | string>((resolve) => proc.on('exit', (code, signal) => resolve(code ?? signal ?? -1)));
  return { proc, exited, stdout: () => stdout, stderr: () => stderr };
}

describe('sealrelay start with logging.file', () => {
  let relay: ReturnType<typeof startRelay> | undefined;
  afterEach(async () => {
    await killIfRunning(relay);
    relay = undefined;
  });

  it('logs to the file (0640, nothing on stdout); after the file is moved away, SIGHUP begins a new one', async () => {
    const logDir = mkdtempSync(join(tmpdir(), 'sealrelay-logdir-'));
    const file = join(logDir, 'relay.log');
    relay = startRelay(writeConfigFile(mkdtempSync(join(tmpdir(), 'sealrelay-logfile-')), testConfig({ logging: { level: 'info', file } })));
    const r = relay;
    await waitFor('relay.started in the file', () => jsonLines(file).find((l) => l.event === 'relay.started'), () => r.stderr() + ' | stdout: ' + r.stdout().slice(0, 3000) + ' | files: ' + String(readdirSync(logDir)));
    expect(statSync(file).mode & 0o777).toBe(0o640);
    expect(r.stdout()).toBe('');

    // logrotate: move the file away, then `systemctl reload`.
    renameSync(file, `${file}.1`);
    r.proc.kill('SIGHUP');
    await waitFor('relay.reloaded in a new file', () => jsonLines(file).find((l) => l.event === 'relay.reloaded'), r.stderr);
    expect(jsonLines(`${file}.1`).some((l) => l.event === 'relay.reloaded')).toBe(false);

    r.proc.kill('SIGTERM');
    expect(await r.exited).toBe(0);
    expect(jsonLines(file).at(-1)).toMatchObject({ event: 'relay.stopped' });
    expect(r.stdout()).toBe('');
  }, 120_000);

  it('a log file in a directory that does not exist: exit 78, the error names logging.file and the directory', async () => {
    const missing = join(tmpdir(), 'sealrelay-no-such-dir', 'relay.log');
    relay = startRelay(writeConfigFile(mkdtempSync(join(tmpdir(), 'sealrelay-logfile-')), testConfig({ logging: { file: missing } })));
    expect(await relay.exited).toBe(78);
    expect(relay.stderr()).toMatch(/logging\.file: .*sealrelay-no-such-dir.* does not exist/);
  }, 30_000);

  it('rotation without a file is a config error naming logging.rotate', async () => {
    const config = testConfig();
    // As an operator might write it (testConfig would refuse it).
    Object.assign(config.logging, { rotate: { max_bytes: 1048576 } });
    relay = startRelay(writeConfigFile(mkdtempSync(join(tmpdir(), 'sealrelay-logfile-')), config));
    expect(await relay.exited).toBe(78);
    expect(relay.stderr()).toMatch(/logging\.rotate: rotation needs logging\.file/);
  }, 30_000);
});
