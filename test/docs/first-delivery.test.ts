// README "A first delivery on one machine", run as written: the config block and the
// commands are taken from README.md by their <!-- first-delivery: … --> markers, and
// run for real — the receiving server script, the relay from dist/ (`npx sealrelay`
// is bin/sealrelay.js, which runs the build), swaks, `sealrelay log`. The only changes
// are the ones a shared test machine needs: the directory is a temp dir, every port
// is 0 (the relay's through its environment override, the receiver's as its
// argument, and the route and swaks follow the ports actually bound), and DNS goes to
// a local stub. And the development certificate the first start would make is made
// here with Node's native keygen (the relay's own takes 5–15 s on a loaded 2-core
// machine; test/cli/start.test.ts covers it), put where the relay looks for it.
// If the README and the relay drift apart, this fails.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDnsStub, type DnsStub } from '../helpers/dns-stub.ts';
import { selfSigned } from '../helpers/test-ca.ts';
import { markedBlock, ROOT } from './markdown.ts';

/** Each wait, and each test in all: generous, as a relay process and several CLI runs share a loaded 2-core machine. */
const WAIT_MS = 60_000;
const TEST_MS = 150_000;

/** The commands of a shell block: one per line, comments and blank lines left out. */
function commandsOf(marker: string): string[][] {
  return markedBlock('README.md', `first-delivery: ${marker}`)
    .text.split('\n')
    .map((line) => line.replace(/\s+#.*$/, '').trim())
    .filter((line) => line !== '')
    .map((line) => {
      // Plain words only, so that splitting at spaces is what a shell would do.
      expect(line, 'the recipe commands are plain words (no quoting or shell syntax)').toMatch(/^[\w@./:=-]+( [\w@./:=-]+)*$/);
      return line.split(' ');
    });
}

const configBlock = markedBlock('README.md', 'first-delivery: config').text;
const [receiverCmd = []] = commandsOf('receiver');
const [relayCmd = []] = commandsOf('relay');
const [swaksCmd = [], logCmd = []] = commandsOf('submit');

/** The README's directory for the try (from `-c DIR/sealrelay.yaml`). */
const readmeConfigFile = relayCmd[relayCmd.indexOf('-c') + 1] ?? '';
const readmeDir = dirname(readmeConfigFile);

function envWithout(extra: Record<string, string>): NodeJS.ProcessEnv {
  return { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('SEALRELAY_'))), ...extra };
}

/** A README command as this machine runs it: `npx sealrelay` is bin/sealrelay.js, `node` this Node; paths and ports swapped. */
function argv(cmd: string[], swap: Record<string, string>): [string, string[]] {
  const words = cmd.map((w) => Object.entries(swap).reduce((s, [from, to]) => s.split(from).join(to), w));
  if (words[0] === 'npx' && words[1] === 'sealrelay') return [process.execPath, [join(ROOT, 'bin/sealrelay.js'), ...words.slice(2)]];
  if (words[0] === 'node') return [process.execPath, words.slice(1)];
  return [words[0] ?? '', words.slice(1)];
}

function run(cmd: string[], swap: Record<string, string>, env: NodeJS.ProcessEnv): Promise<{ code: number; stdout: string; stderr: string }> {
  const [file, args] = argv(cmd, swap);
  return new Promise((done, fail) => {
    execFile(file, args, { cwd: ROOT, env, timeout: WAIT_MS }, (err, stdout, stderr) => {
      if (err && typeof err.code !== 'number') return fail(err);
      done({ code: typeof err?.code === 'number' ? err.code : 0, stdout, stderr });
    });
  });
}

/** A long-running README command, its output collected. */
function startProcess(cmd: string[], swap: Record<string, string>, env: NodeJS.ProcessEnv) {
  const [file, args] = argv(cmd, swap);
  const proc = spawn(file, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const out = { stdout: '', stderr: '' };
  proc.stdout.on('data', (c: Buffer) => (out.stdout += c.toString('utf8')));
  proc.stderr.on('data', (c: Buffer) => (out.stderr += c.toString('utf8')));
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
  return { proc, out, exited };
}

/** Waits until `probe` gives a value (checked after every output chunk and at most every 100 ms). */
async function until<T>(what: string, probe: () => T | null | Promise<T | null>, proc?: ChildProcess): Promise<T> {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const got = await probe();
    if (got !== null) return got;
    if (proc && proc.exitCode !== null) throw new Error(`${what}: the process exited (${proc.exitCode}) first`);
    if (Date.now() > deadline) throw new Error(`${what}: not within ${WAIT_MS} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

let dir = '';
let dns: DnsStub;
let receiver: ReturnType<typeof startProcess>;
let relay: ReturnType<typeof startProcess>;
let swap: Record<string, string> = {};
let relayEnv: NodeJS.ProcessEnv = {};

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'sealrelay-first-'));
  dns = await startDnsStub({});
});

afterAll(async () => {
  for (const p of [relay, receiver]) if (p && p.proc.exitCode === null && p.proc.signalCode === null) p.proc.kill('SIGKILL');
  await dns?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('README: a first delivery on one machine', () => {
  it('the blocks fit together: one directory, the route to the receiver, swaks to the relay', () => {
    expect(receiverCmd.slice(0, 2)).toEqual(['node', 'scripts/local-mx.mjs']);
    expect(relayCmd.slice(0, 2)).toEqual(['npx', 'sealrelay']);
    expect(relayCmd.at(-1)).toBe('start');
    expect(basename(readmeConfigFile)).toBe('sealrelay.yaml');
    expect(swaksCmd[0]).toBe('swaks');
    expect(logCmd).toEqual(['npx', 'sealrelay', '-c', readmeConfigFile, 'log']);
    // The receiver's port is the route's, the relay's listener port is swaks's.
    expect(configBlock).toContain(`127.0.0.1:${receiverCmd[2]}`);
    const listenerPort = /port: (\d+)/.exec(configBlock)?.[1];
    expect(swaksCmd).toContain(`127.0.0.1:${listenerPort}`);
  });

  it('delivers: swaks gets 250, the receiver sees TLS, and `sealrelay log` says delivered with the same TLS', async () => {
    // 1. The config, in the try's directory (and the development pair, see above).
    writeFileSync(join(dir, 'sealrelay.yaml'), configBlock);
    const pair = selfSigned({ commonName: 'relay.localhost' });
    mkdirSync(join(dir, 'certs'));
    writeFileSync(join(dir, 'certs', 'sealrelay-dev.crt'), pair.certPem);
    writeFileSync(join(dir, 'certs', 'sealrelay-dev.key'), pair.keyPem, { mode: 0o600 });

    // 2. The receiving server, on a free port.
    receiver = startProcess([...receiverCmd.slice(0, 2), '0'], {}, envWithout({}));
    const mxPort = await until('the receiver listens', () => /listening on 127\.0\.0\.1:(\d+)/.exec(receiver.out.stdout)?.[1] ?? null, receiver.proc);
    const routeFrom = `127.0.0.1:${receiverCmd[2]}`;
    writeFileSync(join(dir, 'sealrelay.yaml'), configBlock.replace(routeFrom, `127.0.0.1:${mxPort}`));

    // 3. The relay, its listener on a free port, DNS to the stub.
    const listenerName = /listeners:\s*\n(?:\s*#.*\n)*\s*(\w+):/.exec(configBlock)?.[1] ?? '';
    relayEnv = envWithout({ [`SEALRELAY_LISTENER_${listenerName.toUpperCase()}_PORT`]: '0', SEALRELAY_DNS_SERVERS: dns.server });
    swap = { [readmeDir]: dir };
    relay = startProcess(relayCmd, swap, relayEnv);
    const relayPort = await until(
      'the relay listens',
      () => {
        for (const line of relay.out.stdout.split('\n')) {
          if (!line.includes('"relay.started"') || !line.includes('"listeners"')) continue;
          const started = JSON.parse(line) as { listeners: { port: number }[] };
          return String(started.listeners[0]?.port);
        }
        return null;
      },
      relay.proc,
    );
    const listenerPort = /port: (\d+)/.exec(configBlock)?.[1] ?? '';
    swap = { [readmeDir]: dir, [`127.0.0.1:${listenerPort}`]: `127.0.0.1:${relayPort}` };

    // 4. Submit, then read the log until the attempt is there.
    const submitted = await run(swaksCmd, swap, envWithout({}));
    expect(submitted.code, submitted.stdout + submitted.stderr).toBe(0);
    const queueId = /250 2\.0\.0 Ok: queued as (\S+)/.exec(submitted.stdout)?.[1];
    expect(queueId, submitted.stdout).toBeTruthy();

    const received = await until('the receiver gets the message', () => /local-mx: received \d+ bytes from <app@clinic\.example> to pat@partner\.test over (TLSv1\.\d) (\S+)/.exec(receiver.out.stdout), receiver.proc);
    await until('the relay records the attempt', () => (relay.out.stdout.includes(`"event":"delivery.record","queueId":"${queueId}"`) ? true : null), relay.proc);
    const line = await until('the log shows the attempt', async () => {
      const log = await run(logCmd, swap, envWithout({}));
      expect(log.code, log.stderr).toBe(0);
      return log.stdout.split('\n').find((l) => l.includes(`${queueId}.0`)) ?? null;
    });
    const [, protocol = '', cipher = ''] = received;
    // What the README's `log` shows (its columns may change, and a long value is cut to fit 120 columns; these words may not)…
    expect(line).toContain('delivered');
    expect(line).toContain(protocol);
    // …and the whole record agrees with what the receiver negotiated on its own socket.
    const json = await run([...logCmd, '--json', '--message', queueId ?? ''], swap, envWithout({}));
    const record = JSON.parse(json.stdout.trim().split('\n')[0] ?? '{}') as Record<string, unknown>;
    expect(record).toMatchObject({
      recipient: 'pat@partner.test',
      outcome: 'delivered',
      method: 'tls',
      mx: { ip: '127.0.0.1', port: Number(mxPort) },
      tls: { protocol, cipher },
      decision: { rule: 'rule:partner-needs-tls', mode: 'forced', verification: 'none' },
      smtp: { code: 250 },
    });
  }, TEST_MS);

  it('with `verification: ca` in the rule, the reloaded relay defers the next message instead', async () => {
    const withCa = configBlock.replace(/( +)mode: forced(.*)\n/, '$1mode: forced$2\n$1verification: ca\n');
    expect(withCa).not.toBe(configBlock);
    const receivedBefore = receiver.out.stdout.split('local-mx: received').length;
    const mark = relay.out.stdout.length;
    writeFileSync(join(dir, 'sealrelay.yaml'), withCa.replace(`127.0.0.1:${receiverCmd[2]}`, routeTo()));
    await until('the relay reloads the edited file', () => (relay.out.stdout.slice(mark).includes('"relay.reloaded"') ? true : null), relay.proc);

    const submitted = await run(swaksCmd, swap, envWithout({}));
    expect(submitted.code, submitted.stdout + submitted.stderr).toBe(0);
    const queueId = /250 2\.0\.0 Ok: queued as (\S+)/.exec(submitted.stdout)?.[1];
    await until('the relay records the attempt', () => (relay.out.stdout.includes(`"event":"delivery.record","queueId":"${queueId}"`) ? true : null), relay.proc);
    const line = await until('the log shows the second attempt', async () => {
      const log = await run(logCmd, swap, envWithout({}));
      return log.stdout.split('\n').find((l) => l.includes(`${queueId}.0`)) ?? null;
    });
    expect(line).toContain('deferred');
    // The recipient may be cut in the table (120 columns, a long reason beside it): the record says it whole.
    const json = await run([...logCmd, '--json', '--message', queueId ?? ''], swap, envWithout({}));
    expect(JSON.parse(json.stdout.trim().split('\n')[0] ?? '{}')).toMatchObject({ recipient: 'pat@partner.test', outcome: 'deferred' });
    expect(receiver.out.stdout.split('local-mx: received').length).toBe(receivedBefore);

    relay.proc.kill('SIGTERM');
    expect(await relay.exited).toBe(0);
  }, TEST_MS);
});

/** The route as the first test rewrote it (the receiver's bound port). */
function routeTo(): string {
  const port = /listening on 127\.0\.0\.1:(\d+)/.exec(receiver.out.stdout)?.[1];
  return `127.0.0.1:${port}`;
}
