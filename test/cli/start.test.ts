// `sealrelay start` as a real process: it listens (port 0), reloads on SIGHUP,
// keeps the running config when the new one has problems, and on SIGTERM stops
// cleanly with exit 0. Runs once the whole relay (src/relay.ts and its ingress) exists.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { makeSandbox, ROOT, type Sandbox } from './harness.ts';

const RELAY_PRESENT = ['src/relay.ts', 'src/ingress/index.ts'].every((f) => existsSync(join(ROOT, f)));
/** Start-up includes generating the dev certificate; generous on a loaded machine. */
const EVENT_TIMEOUT_MS = 20_000;

interface LogLine {
  event?: string;
  [key: string]: unknown;
}

let box: Sandbox | undefined;
let child: ChildProcess | undefined;

afterEach(() => {
  if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  box?.cleanup();
});

/** Starts the relay and collects its JSON log lines. */
function startRelayProcess(configFile: string, cwd = ROOT) {
  const events: LogLine[] = [];
  let stderr = '';
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('SEALRELAY_')));
  const proc = spawn(process.execPath, [join(ROOT, 'bin/sealrelay.js'), '-c', configFile, 'start'], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
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

describe.skipIf(!RELAY_PRESENT)('sealrelay start', () => {
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
