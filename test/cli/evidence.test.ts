// `sealrelay evidence` as an operator and an auditor run it: keygen (mode 0600,
// never overwrites), pubkey, evidence as JSON and HTML from a real store, verify
// (exit 0 valid, exit 1 tampered or another key, with the reason).
import { chmodSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { seedEvidenceStore, SECRET_BODY, SECRET_SUBJECT, type Seeded } from '../events/seed-evidence.ts';
import { makeSandbox, runCli, type Sandbox } from './harness.ts';

describe('sealrelay evidence', () => {
  let sandbox: Sandbox;
  let keyFile: string;
  let seeded: Seeded;
  const cli = (...args: string[]) => runCli(['--config', sandbox.configFile, ...args]);

  beforeEach(async () => {
    sandbox = makeSandbox();
    keyFile = join(sandbox.dir, 'evidence.key');
    writeFileSync(sandbox.configFile, `${readFileSync(sandbox.configFile, 'utf8')}\nserver: { hostname: relay.clinic.example }\nevidence: { signing_key_file: ${JSON.stringify(keyFile)} }\n`);
    mkdirSync(join(sandbox.dir, 'data'), { recursive: true });
    seeded = await seedEvidenceStore(sandbox.storePath);
  });
  afterEach(() => sandbox.cleanup());

  it('keygen writes a mode 0600 PKCS#8 key, prints the public key, and never overwrites', async () => {
    const made = await cli('evidence', 'keygen', '--out', keyFile);
    expect(made.code).toBe(0);
    expect(statSync(keyFile).mode & 0o777).toBe(0o600);
    const pem = readFileSync(keyFile, 'utf8');
    expect(pem).toMatch(/^-----BEGIN PRIVATE KEY-----/);
    expect(made.stdout).toContain('-----BEGIN PUBLIC KEY-----');
    expect(made.stdout).not.toContain('PRIVATE KEY');
    const again = await cli('evidence', 'keygen', '--out', keyFile);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/exists; not overwritten/);
    expect(readFileSync(keyFile, 'utf8')).toBe(pem);
    // pubkey: the same public key, its id on stderr.
    const pub = await cli('evidence', 'pubkey');
    expect(pub.code).toBe(0);
    expect(made.stdout).toContain(pub.stdout.trim());
    expect(pub.stderr).toMatch(/^key id SHA256:[0-9a-f]{64}$/m);
    expect(made.stdout).toContain(pub.stderr.match(/SHA256:[0-9a-f]{64}/)![0]);
  });

  it('a key file readable by others is refused (exit 78), its content never printed', async () => {
    await cli('evidence', 'keygen', '--out', keyFile);
    chmodSync(keyFile, 0o644);
    const run = await cli('evidence', seeded.queueId);
    expect(run.code).toBe(78);
    expect(run.stderr).toMatch(/lets group or others read it; chmod 600/);
    expect(run.stderr + run.stdout).not.toContain(readFileSync(keyFile, 'utf8').split('\n')[1]!);
  });

  it('evidence as JSON and HTML verifies with the published key (exit 0); tampered or another key: exit 1 with the reason', async () => {
    await cli('evidence', 'keygen', '--out', keyFile);
    const pubFile = join(sandbox.dir, 'relay.pub');
    writeFileSync(pubFile, (await cli('evidence', 'pubkey')).stdout);

    const json = await cli('evidence', seeded.messageId);
    expect(json.code).toBe(0);
    const doc = JSON.parse(json.stdout) as { payload: { relay: string; messages: { recipients: unknown[] }[] } };
    expect(doc.payload.relay).toBe('relay.clinic.example');
    expect(doc.payload.messages[0]!.recipients).toHaveLength(3);
    expect(json.stdout).not.toContain(SECRET_SUBJECT);
    expect(json.stdout).not.toContain(SECRET_BODY);

    const jsonFile = join(sandbox.dir, 'evidence.json');
    const htmlFile = join(sandbox.dir, 'evidence.html');
    expect((await cli('evidence', seeded.queueId, '--out', jsonFile)).code).toBe(0);
    expect(statSync(jsonFile).mode & 0o777).toBe(0o600);
    expect((await cli('evidence', seeded.queueId, '--format', 'html', '--out', htmlFile)).code).toBe(0);
    expect(readFileSync(htmlFile, 'utf8')).toMatch(/^<!DOCTYPE html>/);
    // --out never overwrites.
    expect((await cli('evidence', seeded.queueId, '--out', jsonFile)).code).toBe(1);

    for (const file of [jsonFile, htmlFile]) {
      const ok = await runCli(['evidence', 'verify', file, '--key', pubFile]);
      expect(ok.code, ok.stderr).toBe(0);
      expect(ok.stdout).toMatch(/valid (json|html) evidence, signed by SHA256:[0-9a-f]{64}/);
      expect(ok.stdout).toContain('3 recipient(s)');
    }

    // One byte changed: the cipher's bit count.
    const tampered = join(sandbox.dir, 'tampered.json');
    writeFileSync(tampered, readFileSync(jsonFile, 'utf8').replace('"bits":256', '"bits":257'));
    const bad = await runCli(['evidence', 'verify', tampered, '--key', pubFile]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/INVALID: the signature does not match the content/);

    // The HTML's visible text changed.
    const tamperedHtml = join(sandbox.dir, 'tampered.html');
    writeFileSync(tamperedHtml, readFileSync(htmlFile, 'utf8').replace('(256 bits)', '(128 bits)'));
    const badHtml = await runCli(['evidence', 'verify', tamperedHtml, '--key', pubFile]);
    expect(badHtml.code).toBe(1);
    expect(badHtml.stderr).toMatch(/visible page differs/);

    // Another relay's key.
    const otherKey = join(sandbox.dir, 'other.key');
    const other = await runCli(['evidence', 'keygen', '--out', otherKey]);
    const otherPub = join(sandbox.dir, 'other.pub');
    writeFileSync(otherPub, other.stdout.slice(other.stdout.indexOf('-----BEGIN PUBLIC KEY-----')));
    const wrong = await runCli(['evidence', 'verify', jsonFile, '--key', otherPub]);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/not by the key given/);

    // No key: nothing is verified; the key id the file names is reported for comparison.
    const noKey = await runCli(['evidence', 'verify', jsonFile]);
    expect(noKey.code).toBe(64);
    expect(noKey.stderr).toMatch(/says it was signed by key SHA256:[0-9a-f]{64}; compare that with the published key id/);
    // A private key is not a published key.
    expect((await runCli(['evidence', 'verify', jsonFile, '--key', keyFile])).stderr).toMatch(/a private key; give the published public key/);
  }, 90_000);

  it('an unknown message: exit 1; no signing key configured: exit 78; bad --format: exit 64', async () => {
    await cli('evidence', 'keygen', '--out', keyFile);
    const unknown = await cli('evidence', 'NOSUCHID');
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/no delivery records for NOSUCHID/);
    expect((await cli('evidence', seeded.queueId, '--format', 'pdf')).code).toBe(64);
    writeFileSync(sandbox.configFile, readFileSync(sandbox.configFile, 'utf8').replace(/evidence: \{.*\}\n/, ''));
    const noKey = await cli('evidence', seeded.queueId);
    expect(noKey.code).toBe(78);
    expect(noKey.stderr).toMatch(/evidence.signing_key_file is not set/);
  });
});
