// The submission certificate over the relay's life: an operator's certificate that
// is about to lapse, or has, is reported at start (and again daily and on reload);
// the relay's own development pair is renewed before it lapses and the new one is
// what STARTTLS presents, as is a pair an operator replaced on disk.
import { X509Certificate } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { expect, it } from 'vitest';
import type { Config } from '../../src/config/schema.ts';
import { generateSelfSigned } from '../../src/ingress/dev-cert.ts';
import { createLogger } from '../../src/log.ts';
import { startRelay } from '../../src/relay.ts';
import { RawClient } from '../ingress/harness.ts';
import { logCapture, testConfig } from '../helpers/relay.ts';
import { selfSigned } from '../helpers/test-ca.ts';

const DAY = 86_400_000;

function install(config: Config, pair: { cert: string; key: string }): void {
  mkdirSync(dirname(config.ingress.cert_file), { recursive: true });
  writeFileSync(config.ingress.cert_file, pair.cert);
  writeFileSync(config.ingress.key_file, pair.key, { mode: 0o600 });
}

/** Starts the relay, returns its log lines from start-up and the certificate its STARTTLS presents. */
async function startAndLook(config: Config): Promise<{ lines: Record<string, unknown>[]; presented: X509Certificate }> {
  const log = logCapture();
  const relay = await startRelay({ config, logger: createLogger('info', log.stream) });
  try {
    const c = await RawClient.open(relay.listeners[0]!.port);
    await c.ehlo();
    await c.starttls();
    const presented = c.tlsSocket!.getPeerX509Certificate()!;
    c.destroy();
    return { lines: log.lines, presented };
  } finally {
    await relay.close();
  }
}

const operatorPair = (notAfter: Date) => {
  const p = selfSigned({ commonName: 'relay.sealrelay.test', notBefore: new Date(Date.now() - 90 * DAY), notAfter });
  return { cert: p.certPem, key: p.keyPem };
};

it("an operator's certificate with days left: a warning with the days, and it is served", async () => {
  const config = testConfig();
  const pair = operatorPair(new Date(Date.now() + 5 * DAY + 3_600_000));
  install(config, pair);
  const { lines, presented } = await startAndLook(config);
  expect(lines.find((l) => l.event === 'relay.cert_expiring')).toMatchObject({ level: 40, certFile: config.ingress.cert_file, daysLeft: 5 });
  expect(lines.some((l) => l.event === 'relay.cert_expired' || l.event === 'relay.dev_cert_renewed')).toBe(false);
  expect(presented.fingerprint256).toBe(new X509Certificate(pair.cert).fingerprint256);
});

it("an operator's expired certificate: an error, never replaced (the relay still starts)", async () => {
  const config = testConfig();
  const pair = operatorPair(new Date(Date.now() - DAY));
  install(config, pair);
  const { lines, presented } = await startAndLook(config);
  expect(lines.find((l) => l.event === 'relay.cert_expired')).toMatchObject({ level: 50, certFile: config.ingress.cert_file });
  expect(presented.fingerprint256).toBe(new X509Certificate(pair.cert).fingerprint256);
});

it('our development pair in its last month is renewed at start, and STARTTLS presents the new one', async () => {
  const config = testConfig();
  const old = generateSelfSigned(config.server.hostname, new Date(Date.now() - 350 * DAY));
  install(config, old);
  const { lines, presented } = await startAndLook(config);
  const renewed = lines.find((l) => l.event === 'relay.dev_cert_renewed');
  expect(renewed).toMatchObject({ level: 40, certFile: config.ingress.cert_file });
  expect(Date.parse(renewed!.notAfter as string)).toBeGreaterThan(Date.now() + 364 * DAY);
  expect(presented.fingerprint256).not.toBe(new X509Certificate(old.cert).fingerprint256);
  expect(Date.parse(presented.validTo)).toBe(Date.parse(renewed!.notAfter as string));
  expect(lines.some((l) => l.event === 'relay.cert_expiring' || l.event === 'relay.cert_expired')).toBe(false);
});

it('a fresh pair is generated and its expiry logged; a healthy certificate draws no warning', async () => {
  const config = testConfig();
  const { lines } = await startAndLook(config);
  const generated = lines.find((l) => l.event === 'relay.dev_cert_generated');
  expect(Date.parse(generated!.notAfter as string)).toBeGreaterThan(Date.now() + 364 * DAY);
  expect(lines.some((l) => ['relay.cert_expiring', 'relay.cert_expired', 'relay.dev_cert_renewed'].includes(l.event as string))).toBe(false);
});

it('a running relay renews its development pair when the daily check finds it in its last month', async () => {
  const config = testConfig();
  const log = logCapture();
  const relay = await startRelay({ config, logger: createLogger('info', log.stream), certificateCheckMs: 200 });
  try {
    const first = new X509Certificate(readFileSync(config.ingress.cert_file)).fingerprint256;
    // Time passes: the pair on disk is now one made 350 days ago.
    const old = generateSelfSigned(config.server.hostname, new Date(Date.now() - 350 * DAY));
    install(config, old);
    const deadline = Date.now() + 10_000;
    while (!log.lines.some((l) => l.event === 'relay.dev_cert_renewed')) {
      if (Date.now() > deadline) throw new Error('the daily check never renewed the pair');
      await new Promise((r) => setTimeout(r, 50));
    }
    const c = await RawClient.open(relay.listeners[0]!.port);
    await c.ehlo();
    await c.starttls();
    const presented = c.tlsSocket!.getPeerX509Certificate()!;
    c.destroy();
    // What is served is the renewed pair on disk: neither the one the relay started with nor the old one.
    expect(presented.fingerprint256).toBe(new X509Certificate(readFileSync(config.ingress.cert_file)).fingerprint256);
    expect(presented.fingerprint256).not.toBe(first);
    expect(presented.fingerprint256).not.toBe(new X509Certificate(old.cert).fingerprint256);
  } finally {
    await relay.close();
  }
});

it('a certificate replaced on disk (say, by certbot) is served after the next check, without a restart', async () => {
  const config = testConfig();
  install(config, operatorPair(new Date(Date.now() + 10 * DAY)));
  const log = logCapture();
  const relay = await startRelay({ config, logger: createLogger('info', log.stream), certificateCheckMs: 200 });
  try {
    const renewed = operatorPair(new Date(Date.now() + 90 * DAY));
    install(config, renewed);
    const deadline = Date.now() + 10_000;
    while (!log.lines.some((l) => l.event === 'relay.reloaded' && l.certFile === config.ingress.cert_file)) {
      if (Date.now() > deadline) throw new Error('the new certificate was never picked up');
      await new Promise((r) => setTimeout(r, 50));
    }
    const c = await RawClient.open(relay.listeners[0]!.port);
    await c.ehlo();
    await c.starttls();
    expect(c.tlsSocket!.getPeerX509Certificate()!.fingerprint256).toBe(new X509Certificate(renewed.cert).fingerprint256);
    c.destroy();
  } finally {
    await relay.close();
  }
});
