// `sealrelay dkim keygen` as an operator runs it: the key file it writes signs mail
// that mailauth verifies against the DNS record it printed, served by the DNS stub.
import { execFileSync } from 'node:child_process';
import dns from 'node:dns';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dkimVerify } from 'mailauth/lib/dkim/verify.js';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { loadDkimKey, signDkim } from '../../src/crypto/dkim.ts';
import { startDnsStub, type DnsStub } from '../helpers/dns-stub.ts';
import { lines, runCli } from './harness.ts';

let dnsStub: DnsStub;
let dir: string;

beforeAll(async () => {
  dnsStub = await startDnsStub();
});
afterAll(() => dnsStub?.close());
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'sealrelay-dkim-cli-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const RECORD = /^(\S+)\. IN TXT ((?:"[^"]*" ?)+)$/;

/** The name and the strings of a printed zone line. */
function parseRecord(line: string | undefined): { name: string; strings: string[] } {
  const m = RECORD.exec(line ?? '');
  if (!m) throw new Error(`not a TXT zone line: ${line}`);
  return { name: m[1]!, strings: [...m[2]!.matchAll(/"([^"]*)"/g)].map((s) => s[1]!) };
}

/** Publishes the record as printed (several strings) and verifies a message signed with `pem`. */
async function signAndVerify(domain: string, selector: string, pem: string, record: { name: string; strings: string[] }) {
  dnsStub.set(record.name, 'TXT', [record.strings]);
  const message = Buffer.from(`From: app@${domain}\r\nTo: someone@example.invalid\r\nSubject: hello\r\n\r\nbody\r\n`);
  const signed = await signDkim(message, [loadDkimKey(domain, selector, pem)]);
  const resolver = new dns.promises.Resolver({ timeout: 2000, tries: 1 });
  resolver.setServers([dnsStub.server]);
  const { results } = await dkimVerify(signed.message, { resolver: (name, rrtype) => resolver.resolve(name, rrtype) as Promise<string[][]> });
  return results.map((r) => r.status.result);
}

describe('sealrelay dkim keygen', () => {
  it('--out writes a 0600 RSA key and prints a record, in strings of at most 255 characters, that verifies', async () => {
    const out = join(dir, 'clinic.pem');
    const res = await runCli(['dkim', 'keygen', 'Clinic.Invalid', '--selector', 's2026', '--out', out]);
    expect(res).toMatchObject({ code: 0, stderr: '' });
    const [wrote, publish, zone, ...rest] = lines(res.stdout);
    expect([wrote, publish, rest]).toEqual([`wrote the private key to ${out} (mode 0600)`, 'publish in DNS:', []]);
    expect(statSync(out).mode & 0o777).toBe(0o600);
    const pem = readFileSync(out, 'utf8');
    // openssl agrees it is a 2048-bit RSA key.
    expect(execFileSync('openssl', ['pkey', '-noout', '-text'], { input: pem }).toString()).toMatch(/2048 bit/);

    const record = parseRecord(zone);
    expect(record.name).toBe('s2026._domainkey.clinic.invalid');
    expect(record.strings.length).toBeGreaterThan(1);
    expect(record.strings.every((s) => s.length <= 255)).toBe(true);
    expect(record.strings.join('')).toMatch(/^v=DKIM1; k=rsa; p=[A-Za-z0-9+/]+=*$/);
    expect(await signAndVerify('clinic.invalid', 's2026', pem, record)).toEqual(['pass']);
  });

  it('without --out: the key alone on stdout, the record on stderr; default selector "sealrelay"', async () => {
    const res = await runCli(['dkim', 'keygen', 'lab.invalid', '--type', 'ed25519']);
    expect(res.code).toBe(0);
    expect(res.stdout).toMatch(/^-----BEGIN PRIVATE KEY-----\n[\s\S]+\n-----END PRIVATE KEY-----\n$/);
    expect(execFileSync('openssl', ['pkey', '-noout', '-text'], { input: res.stdout }).toString()).toMatch(/ED25519 Private-Key/);
    const [publish, zone, ...rest] = lines(res.stderr);
    expect([publish, rest]).toEqual(['publish in DNS:', []]);
    const record = parseRecord(zone);
    expect(record.name).toBe('sealrelay._domainkey.lab.invalid');
    expect(record.strings).toEqual([expect.stringMatching(/^v=DKIM1; k=ed25519; p=[A-Za-z0-9+/]{43}=$/)]);
    expect(await signAndVerify('lab.invalid', 'sealrelay', res.stdout, record)).toEqual(['pass']);
  });

  it('--bits sets the RSA size', async () => {
    const res = await runCli(['dkim', 'keygen', 'a.invalid', '--bits', '3072']);
    expect(res.code).toBe(0);
    expect(execFileSync('openssl', ['pkey', '-noout', '-text'], { input: res.stdout }).toString()).toMatch(/3072 bit/);
  });

  it('refuses to overwrite an existing file (exit 1), leaving it as it was', async () => {
    const out = join(dir, 'existing.pem');
    writeFileSync(out, 'the key a published record points at\n');
    const res = await runCli(['dkim', 'keygen', 'clinic.invalid', '--out', out]);
    expect(res).toMatchObject({ code: 1, stdout: '' });
    expect(res.stderr).toContain(`${out} exists; not overwritten`);
    expect(readFileSync(out, 'utf8')).toBe('the key a published record points at\n');
  });

  const usage: Array<[string, string[], RegExp]> = [
    ['an unknown type', ['--type', 'dsa'], /Allowed choices are rsa, ed25519/],
    ['bits that are not a number', ['--bits', 'many'], /whole number of bits/],
    ['bits under 1024', ['--bits', '512'], /between 1024 and 8192/],
    ['bits with ed25519', ['--type', 'ed25519', '--bits', '2048'], /fixed size/],
    ['a bad selector', ['--selector', 'no spaces'], /selector "no spaces" is not a DNS name/],
  ];
  it.each(usage)('refuses %s with exit 64 and writes nothing', async (_name, args, error) => {
    const out = join(dir, 'key.pem');
    const res = await runCli(['dkim', 'keygen', 'clinic.invalid', '--out', out, ...args]);
    expect(res.code).toBe(64);
    expect(res.stderr).toMatch(error);
    expect(existsSync(out)).toBe(false);
  });

  it('refuses a bad domain with exit 64', async () => {
    const res = await runCli(['dkim', 'keygen', 'localhost']);
    expect(res).toMatchObject({ code: 64, stdout: '' });
    expect(res.stderr).toMatch(/"localhost" is not a domain name/);
  });
});
