// `sealrelay start` as a real process: it listens (port 0), reloads on SIGHUP,
// keeps the running config when the new one has problems, and on SIGTERM stops
// cleanly with exit 0.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { makeSandbox, ROOT, runCli, type Sandbox } from './harness.ts';

/** Start-up includes generating the dev certificate; generous on a loaded machine. */
const EVENT_TIMEOUT_MS = 20_000;

interface LogLine {
  event?: string;
  [key: string]: unknown;
}

let box: Sandbox | undefined;
let child: ChildProcess | undefined;
/** Other temp dirs a test made. */
const dirs: string[] = [];

afterEach(() => {
  if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  box?.cleanup();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'sealrelay-start-'));
  dirs.push(dir);
  return dir;
}

/** Starts the relay and collects its JSON log lines. */
function startRelayProcess(configFile: string, cwd = ROOT, args: string[] = []) {
  const events: LogLine[] = [];
  let stderr = '';
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('SEALRELAY_')));
  const proc = spawn(process.execPath, [join(ROOT, 'bin/sealrelay.js'), '-c', configFile, 'start', ...args], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let buffered = '';
  proc.stdout.on('data', (chunk: Buffer) => {
    buffered += chunk.toString('utf8');
    let nl: number;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      if (line.trim()) events.push(JSON.parse(line) as LogLine);
    }
  });
  proc.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));

  async function waitFor(event: string, after = 0, match: (e: LogLine) => boolean = () => true): Promise<LogLine> {
    const deadline = Date.now() + EVENT_TIMEOUT_MS;
    for (;;) {
      const found = events.slice(after).find((e) => e.event === event && match(e));
      if (found) return found;
      if (proc.exitCode !== null) throw new Error(`relay exited ${proc.exitCode} before ${event}; stderr: ${stderr}`);
      if (Date.now() > deadline) throw new Error(`no ${event} within ${EVENT_TIMEOUT_MS} ms; events: ${events.map((e) => e.event).join(', ')}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return { proc, events, exited, waitFor, stderr: () => stderr };
}

describe('sealrelay start', () => {
  it('listens, reloads on SIGHUP, survives a broken reload, and stops on SIGTERM with exit 0', async () => {
    box = makeSandbox();
    const relay = startRelayProcess(box.configFile);
    child = relay.proc;

    // relay.ts also logs relay.started when it generates the dev certificate: take the line with the listeners.
    const started = await relay.waitFor('relay.started', 0, (e) => Array.isArray(e.listeners));
    const listeners = started.listeners as { name: string; port: number }[];
    expect(listeners.map((l) => l.name)).toEqual(['starttls']);
    expect(listeners[0]?.port).toBeGreaterThan(0);

    let mark = relay.events.length;
    relay.proc.kill('SIGHUP');
    await relay.waitFor('relay.reloaded', mark);

    const good = readFileSync(box.configFile, 'utf8');
    writeFileSync(box.configFile, `${good}\nlogging:\n  level: loud\n`);
    mark = relay.events.length;
    relay.proc.kill('SIGHUP');
    const failed = await relay.waitFor('relay.reload_failed', mark);
    expect(String(failed.problems)).toMatch(/logging\.level/);

    relay.proc.kill('SIGTERM');
    expect(await relay.exited).toBe(0);
    const events = relay.events.map((e) => e.event);
    expect(events).toContain('relay.stopping');
    expect(events.at(-1)).toBe('relay.stopped');
    expect(relay.stderr()).toBe('');
  });

  it('starts from any working directory: its threads find their own modules', async () => {
    box = makeSandbox();
    const relay = startRelayProcess(box.configFile, box.dir);
    child = relay.proc;
    await relay.waitFor('relay.started', 0, (e) => Array.isArray(e.listeners));
    relay.proc.kill('SIGTERM');
    expect(await relay.exited).toBe(0);
    expect(relay.stderr()).toBe('');
  });
});

describe('sealrelay start: the certificate pair and paths', () => {
  /** Starts, waits until it listens, stops with SIGTERM; the events of the run. */
  async function runOnce(configFile: string, cwd = ROOT, args: string[] = []): Promise<LogLine[]> {
    const relay = startRelayProcess(configFile, cwd, args);
    child = relay.proc;
    await relay.waitFor('relay.started', 0, (e) => Array.isArray(e.listeners));
    relay.proc.kill('SIGTERM');
    expect(await relay.exited).toBe(0);
    expect(relay.stderr()).toBe('');
    return relay.events;
  }

  it('the development names (the shipped default): the missing pair is generated, as always', async () => {
    box = makeSandbox();
    const events = await runOnce(box.configFile);
    expect(events.find((e) => e.event === 'relay.dev_cert_generated')).toMatchObject({ certFile: join(box.dir, 'certs', 'sealrelay-dev.crt') });
    expect(existsSync(join(box.dir, 'certs', 'sealrelay-dev.key'))).toBe(true);
  });

  it('a missing certificate under any other name: refused (78), naming ingress.cert_file, the file and its line; --dev-cert generates it', async () => {
    box = makeSandbox();
    const cert = join(box.dir, 'tls', 'relay.example.crt');
    const key = join(box.dir, 'tls', 'relay.example.key');
    // The sandbox's own cert_file/key_file lines are replaced by these.
    const text = readFileSync(box.configFile, 'utf8')
      .split('\n')
      .filter((l) => !/^\s+(cert|key)_file:/.test(l))
      .concat([`  cert_file: ${JSON.stringify(cert)}`, `  key_file: ${JSON.stringify(key)}`]);
    writeFileSync(box.configFile, text.join('\n'));
    const certLine = text.findIndex((l) => l.includes('cert_file')) + 1;

    const refused = await runCli(['-c', box.configFile, 'start']);
    expect(refused.code).toBe(78);
    expect(refused.stdout).toBe('');
    expect(refused.stderr).toContain(`${box.configFile}:${certLine}:3: ingress.cert_file: ${cert}: no such file`);
    expect(refused.stderr).toContain(`${box.configFile}:${certLine + 1}:3: ingress.key_file: ${key}: no such file`);
    expect(existsSync(cert) || existsSync(key)).toBe(false);

    const events = await runOnce(box.configFile, ROOT, ['--dev-cert']);
    expect(events.find((e) => e.event === 'relay.dev_cert_generated')).toMatchObject({ certFile: cert });
    expect(existsSync(key)).toBe(true);
  });

  it('a missing recipient_domains_file: refused (78) naming the rule setting and line, before listening', async () => {
    box = makeSandbox(['policies:', '  rules:', '    - name: partners', '      match: { recipient_domains_file: partners.txt }', '      mode: forced'].join('\n'));
    const res = await runCli(['-c', box.configFile, 'start']);
    expect(res.code).toBe(78);
    expect(res.stderr).toMatch(new RegExp(`sealrelay\\.yaml:12:16: policies\\.rules\\[partners\\]\\.match\\.recipient_domains_file: ${box.dir}/partners\\.txt: no such file`));
  });

  it("relative paths come from the config file's directory: the store is created next to the config, not in the working directory", async () => {
    const configDir = tempDir();
    const cwd = tempDir();
    const configFile = join(configDir, 'sealrelay.yaml');
    writeFileSync(
      configFile,
      [
        'store: { path: data/relay.db }',
        'ingress:',
        '  listeners: { starttls: { port: 0 } }',
        '  cert_file: certs/sealrelay-dev.crt',
        '  key_file: certs/sealrelay-dev.key',
        '  users_file: users.yaml',
      ].join('\n'),
    );
    const events = await runOnce(configFile, cwd);
    expect(events.find((e) => e.event === 'relay.started' && Array.isArray(e.listeners))).toMatchObject({ store: { path: join(configDir, 'data', 'relay.db') } });
    expect(existsSync(join(configDir, 'data', 'relay.db'))).toBe(true);
    expect(existsSync(join(configDir, 'certs', 'sealrelay-dev.crt'))).toBe(true);
    expect(readdirSync(cwd)).toEqual([]);
  });
});
