// gc-hint.ts: a thread that lets go of message bytes collects its garbage — a full
// collection, not a scavenge — once enough has passed or once it is quiet; without
// --expose-gc it does nothing. Shown in child processes with V8's own GC trace.
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';

/** Collections asked for by gc() in a trace (V8 gives their reason as "testing"; its own ones give others). */
const requested = (trace: string) => trace.split('\n').filter((line) => /(Mark-Compact|Scavenge).*testing/.test(line)).length;
const HINT = fileURLToPath(new URL('../src/gc-hint.ts', import.meta.url));

/** Runs `script` (with `release` bound to releasedMessageBytes) under tsx; returns the GC trace after the marker line. */
function traceAfterRelease(script: string, flags: string[]): string {
  const program = `
    const { releasedMessageBytes: release } = await import(${JSON.stringify(HINT)});
    const keep = setInterval(() => {}, 1000);
    console.log('--- release');
    ${script}
    setTimeout(() => clearInterval(keep), 1800);
  `;
  const out = execFileSync(process.execPath, [...flags, '--trace-gc', '--import', 'tsx', '--input-type=module', '-e', program], { encoding: 'utf8' });
  return out.slice(out.indexOf('--- release'));
}

describe('collections after message bytes are let go', () => {
  test('past 32 MiB at once: a full collection right after the current task', () => {
    const trace = traceAfterRelease(`release(20 * 1024 * 1024); release(20 * 1024 * 1024); console.log('--- same task');`, ['--expose-gc']);
    expect(trace).toMatch(/--- same task[\s\S]*Mark-Compact.*testing/);
    expect(requested(trace)).toBe(1);
  });

  test('4 MiB and then quiet: one full collection about a second later', () => {
    const trace = traceAfterRelease(`release(3 * 1024 * 1024); release(2 * 1024 * 1024); setTimeout(() => console.log('--- quiet'), 500);`, ['--expose-gc']);
    expect(trace).toMatch(/--- quiet[\s\S]*Mark-Compact.*testing/);
    expect(requested(trace)).toBe(1);
  });

  test('small messages alone never cause one', () => {
    const trace = traceAfterRelease(`for (let i = 0; i < 100; i++) release(10_000);`, ['--expose-gc']);
    expect(requested(trace)).toBe(0);
  });

  test('past 32 MiB of small messages: nothing while they flow, one full collection once quiet', () => {
    // 4,000 messages of 10 kB: a forced collection among them would make V8 drop and recompile hot code.
    const trace = traceAfterRelease(
      `for (let i = 0; i < 4000; i++) release(10_000); setTimeout(() => console.log('--- still flowing'), 500);`,
      ['--expose-gc'],
    );
    expect(trace).toContain('--- still flowing');
    expect(requested(trace.slice(0, trace.indexOf('--- still flowing')))).toBe(0);
    expect(trace.slice(trace.indexOf('--- still flowing'))).toMatch(/Mark-Compact.*testing/);
    expect(requested(trace)).toBe(1);
  });

  test('without --expose-gc nothing is collected on demand', () => {
    const trace = traceAfterRelease(`release(40 * 1024 * 1024); setTimeout(() => console.log('--- quiet'), 1500);`, []);
    expect(trace).toContain('--- quiet');
    expect(trace).not.toMatch(/testing/);
  });
});
