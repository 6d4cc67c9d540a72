/**
 * relay-process: SealRelay as a real child process (`node bin/sealrelay.js start`),
 * for tests that need signals: SIGKILL mid-stream, SIGTERM, SIGHUP.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import type { Config } from '../../src/config/schema.ts';

const ROOT = join(import.meta.dirname, '..', '..');

export interface RelayProcess {
  proc: ChildProcess;
  /** Port of each listener by name, from the relay.started log line. */
  ports: Record<string, number>;
  /** Every JSON log line so far. */
  lines: Record<string, unknown>[];
  stderr: () => string;
  waitForLine(predicate: (line: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  /** Resolves with the exit code (or signal name). */
  exited: Promise<number | string>;
}

/** Kills a relay process still running (SIGKILL) and waits for it to be gone; nothing to do for one that exited. */
export async function killIfRunning(relay: Pick<RelayProcess, 'proc' | 'exited'> | undefined): Promise<void> {
  if (!relay || relay.proc.exitCode !== null || relay.proc.signalCode !== null) return;
  relay.proc.kill('SIGKILL');
  await relay.exited;
}

/** Writes a Config as YAML (as an operator would) and returns the file. */
export function writeConfigFile(dir: string, config: Config): string {
  const file = join(dir, 'sealrelay.yaml');
  writeFileSync(file, stringify(config));
  return file;
}

export async function spawnRelay(configFile: string, env: Record<string, string> = {}): Promise<RelayProcess> {
  const proc = spawn(process.execPath, [join(ROOT, 'bin', 'sealrelay.js'), '--config', configFile, 'start'], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: Record<string, unknown>[] = [];
  let stderr = '';
  let partial = '';
  const waiters = new Set<() => void>();
  proc.stdout!.on('data', (chunk: Buffer) => {
    partial += chunk.toString();
    const parts = partial.split('\n');
    partial = parts.pop() ?? '';
    for (const p of parts) {
      if (!p.trim()) continue;
      try {
        lines.push(JSON.parse(p) as Record<string, unknown>);
      } catch {
        lines.push({ raw: p });
      }
    }
    for (const w of waiters) w();
  });
  proc.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | string>((resolve) => proc.on('exit', (code, signal) => resolve(code ?? signal ?? -1)));

  const waitForLine: RelayProcess['waitForLine'] = (predicate, timeoutMs = 15_000) =>
    new Promise((resolve, reject) => {
      const check = () => {
        const hit = lines.find(predicate);
        if (hit) {
          waiters.delete(check);
          clearTimeout(timer);
          resolve(hit);
        }
      };
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(new Error(`no matching log line within ${timeoutMs} ms; stderr: ${stderr}; lines: ${JSON.stringify(lines).slice(0, 2000)}`));
      }, timeoutMs);
      waiters.add(check);
      void exited.then(() => setTimeout(check, 10));
      check();
    });

  const started = await waitForLine((l) => l.event === 'relay.started' && Array.isArray(l.listeners));
  const ports = Object.fromEntries((started.listeners as { name: string; port: number }[]).map((l) => [l.name, l.port]));
  return { proc, ports, lines, stderr: () => stderr, waitForLine, exited };
}
