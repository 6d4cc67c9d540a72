// Interop with a real submitting client: swaks (Debian package) over STARTTLS
// with AUTH PLAIN and LOGIN, the account created by the real CLI.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMx, type StartedMx } from '../helpers/mx.ts';
import { spawnRelay, writeConfigFile, type RelayProcess } from '../helpers/relay-process.ts';
import { testConfig } from '../helpers/relay.ts';
import { dirname } from 'node:path';

const run = promisify(execFile);
const ROOT = join(import.meta.dirname, '..', '..');

async function swaks(args: string[]): Promise<{ code: number; out: string }> {
  try {
    const { stdout, stderr } = await run('swaks', ['--timeout', '10', ...args], { timeout: 20_000 });
    return { code: 0, out: stdout + stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, out: e.stdout + e.stderr };
  }
}

describe('swaks as the submitting client', () => {
  let mx: StartedMx;
  let relay: RelayProcess;
  const password = 'correct horse battery staple';
  let configFile: string;

  beforeAll(async () => {
    mx = await startMx('tls13', { name: 'mx.swaks.test' });
    const config = testConfig({
      ingress: {
        listeners: { starttls: { port: 0, tls: 'starttls' }, submission: { port: 0, tls: 'required' } },
        relay_networks: [], // 127.0.0.1 is "outside": only authenticated clients may relay
      },
      delivery: { routes: { 'swaks.test': `127.0.0.1:${mx.port}` } },
      logging: { level: 'info' },
    });
    const file = (configFile = writeConfigFile(dirname(config.store.path), config));
    // The account is made with the real CLI, password on stdin, as an operator would.
    const add = execFile(process.execPath, [join(ROOT, 'bin/sealrelay.js'), '--config', file, 'user', 'add', 'app1', '--password-stdin'], { cwd: ROOT });
    add.stdin!.end(`${password}\n`);
    expect(await new Promise((r) => add.on('exit', r))).toBe(0);
    relay = await spawnRelay(file);
  }, 30_000);

  afterAll(async () => {
    relay?.proc.kill('SIGTERM');
    await relay?.exited;
    await mx?.close();
  });

  for (const method of ['PLAIN', 'LOGIN']) {
    it(`STARTTLS + AUTH ${method} on the required-TLS listener: queued, delivered, Received shows TLS`, async () => {
      const to = `${method.toLowerCase()}@swaks.test`;
      const { code, out } = await swaks([
        '--server', `127.0.0.1:${relay.ports.submission}`, '--tls', '--auth', method,
        '--auth-user', 'app1', '--auth-password', password, '--from', 'app1@clinic.test', '--to', to,
        '--header', 'Subject: swaks interop',
      ]);
      expect(code, out).toBe(0);
      expect(out).toMatch(/<~\s+250 2\.0\.0 Ok: queued as [A-Za-z0-9]+/);
      for (let i = 0; i < 100 && !mx.received.some((m) => m.envelope.to.includes(to)); i++) await new Promise((r) => setTimeout(r, 50));
      const msg = mx.received.find((m) => m.envelope.to.includes(to));
      expect(msg).toBeDefined();
      const text = msg!.raw.toString();
      // Our inbound Received header records the client's TLS and the authenticated submission.
      const received = /^Received: [^\r\n]*(\r\n[ \t][^\r\n]*)*/m.exec(text)?.[0].replace(/\r\n[ \t]+/g, ' ');
      expect(received).toMatch(/with ESMTPSA .*\(version=TLSv1\.3 cipher=TLS_AES_\d+_GCM_SHA\d+ bits=\d+ verify=NO\)/);
      expect(text).toMatch(/^Message-ID: </im);
    });
  }

  it('an account added with `sealrelay user add` while the relay runs can log in without a restart', async () => {
    const add = execFile(process.execPath, [join(ROOT, 'bin/sealrelay.js'), '--config', configFile, 'user', 'add', 'app2', '--password-stdin'], { cwd: ROOT });
    add.stdin!.end('second secret\n');
    expect(await new Promise((r) => add.on('exit', r))).toBe(0);
    await relay.waitForLine((l) => l.event === 'relay.reloaded' && typeof l.usersFile === 'string');
    const { code, out } = await swaks([
      '--server', `127.0.0.1:${relay.ports.starttls}`, '--tls', '--auth', 'PLAIN', '--auth-user', 'app2', '--auth-password', 'second secret',
      '--from', 'app2@clinic.test', '--to', 'second@swaks.test',
    ]);
    expect(code, out).toBe(0);
  });

  it('the required-TLS listener refuses AUTH before STARTTLS', async () => {
    const { code, out } = await swaks([
      '--server', `127.0.0.1:${relay.ports.submission}`, '--auth', 'PLAIN', '--auth-user', 'app1', '--auth-password', password,
      '--from', 'app1@clinic.test', '--to', 'x@swaks.test',
    ]);
    expect(code).not.toBe(0);
    expect(out).toMatch(/5\d\d[ -]5\.7\.\d+/);
  });

  it('a wrong password is refused with 535 and nothing is queued', async () => {
    const { code, out } = await swaks([
      '--server', `127.0.0.1:${relay.ports.starttls}`, '--tls', '--auth', 'LOGIN', '--auth-user', 'app1', '--auth-password', 'wrong',
      '--from', 'app1@clinic.test', '--to', 'y@swaks.test',
    ]);
    expect(code).not.toBe(0);
    expect(out).toMatch(/535 5\.7\.8/);
  });

  it('no open relay: without AUTH the relay refuses (554 5.7.1)', async () => {
    const { code, out } = await swaks(['--server', `127.0.0.1:${relay.ports.starttls}`, '--tls', '--from', 'a@clinic.test', '--to', 'z@swaks.test']);
    expect(code).not.toBe(0);
    expect(out).toMatch(/554 5\.7\.1/);
    expect(mx.received.some((m) => m.envelope.to.includes('z@swaks.test') || m.envelope.to.includes('y@swaks.test'))).toBe(false);
  });
});
