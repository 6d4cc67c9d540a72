// The relay's web listeners (src/http/listeners.ts, wired in src/relay.ts):
// off unless configured; when configured, HTTPS with the ingress certificate,
// /healthz answering, certificate renewals followed, address changes refused on
// reload, and nothing left listening after close. The settings' syntax too.
import { X509Certificate } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { request as httpsRequest } from 'node:https';
import { connect as tlsConnect } from 'node:tls';
import { describe, expect, it } from 'vitest';
import { configSchema } from '../../src/config/schema.ts';
import { createLogger } from '../../src/log.ts';
import { startRelay } from '../../src/relay.ts';
import { logCapture, testConfig } from '../helpers/relay.ts';
import { selfSigned } from '../helpers/test-ca.ts';
import { parseConfig, ConfigError } from '../../src/config/load.ts';

interface Got {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  peer: X509Certificate;
  protocol: string | null;
}

/** A real HTTPS GET that trusts exactly `caPem` (the relay's self-signed development certificate). */
function httpsGet(port: number, path: string, caPem: string): Promise<Got> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest({ host: '127.0.0.1', port, path, ca: caPem, servername: 'localhost', agent: false }, (res) => {
      const chunks: Buffer[] = [];
      const socket = res.socket as import('node:tls').TLSSocket;
      const peer = socket.getPeerX509Certificate()!;
      const protocol = socket.getProtocol();
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8'), peer, protocol }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** How a TLS 1.1 handshake ends: 'connected', or the error code (the server's alert when it refuses the version). */
function tls11Handshake(port: number): Promise<string> {
  return new Promise((resolve) => {
    const s = tlsConnect({ host: '127.0.0.1', port, minVersion: 'TLSv1', maxVersion: 'TLSv1.1', rejectUnauthorized: false, ciphers: 'DEFAULT:@SECLEVEL=0' });
    s.once('secureConnect', () => (s.destroy(), resolve('connected')));
    s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
  });
}

describe('web listeners in the relay', () => {
  it('none by default: the relay opens no HTTP port', async () => {
    const config = testConfig();
    expect(config.portal.listen).toBeNull();
    expect(config.api.listen).toBeNull();
    const relay = await startRelay({ config, logger: createLogger('silent') });
    try {
      expect(relay.web).toEqual([]);
    } finally {
      await relay.close();
    }
  });

  it('portal and api: HTTPS with the ingress certificate, /healthz with no secrets, TLS ≥ 1.2, closed with the relay', async () => {
    const config = testConfig({ portal: { listen: '127.0.0.1:0' }, api: { listen: 0 } });
    const log = logCapture();
    const relay = await startRelay({ config, logger: createLogger('info', log.stream) });
    let ports: number[] = [];
    try {
      expect(relay.web.map((l) => [l.name, l.host])).toEqual([['portal', '127.0.0.1'], ['api', '127.0.0.1']]);
      ports = relay.web.map((l) => l.port);
      const certPem = readFileSync(config.ingress.cert_file, 'utf8');
      for (const l of relay.web) {
        const got = await httpsGet(l.port, '/healthz', certPem);
        expect(got.status).toBe(200);
        expect(JSON.parse(got.body)).toEqual({ status: 'ok', listener: l.name });
        expect(got.headers['content-type']).toMatch(/^application\/json/);
        expect(got.headers['strict-transport-security']).toBe('max-age=31536000');
        expect(got.headers['cache-control']).toBe('no-store');
        expect(got.peer.fingerprint256).toBe(new X509Certificate(certPem).fingerprint256);
        expect(['TLSv1.2', 'TLSv1.3']).toContain(got.protocol);
        expect(await tls11Handshake(l.port)).toBe('ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION');
        const home = await httpsGet(l.port, '/', certPem);
        expect(home.status).toBe(200);
        expect(home.body).toContain('<html lang="en">');
      }
      expect(log.lines.filter((l) => l.event === 'http.started').map((l) => l.listener)).toEqual(['portal', 'api']);
    } finally {
      await relay.close();
    }
    for (const port of ports) {
      const err = await httpsGet(port, '/healthz', '').then(() => null, (e: NodeJS.ErrnoException) => e);
      expect(err?.code).toBe('ECONNREFUSED');
    }
  });

  it('reload: the same addresses are fine (public_url follows), a changed or added listener needs a restart', async () => {
    const config = testConfig({ portal: { listen: 0 } });
    const relay = await startRelay({ config, logger: createLogger('silent') });
    try {
      await relay.reload(configSchema.parse({ ...config, portal: { ...config.portal, listen: 0, public_url: 'https://secure.clinic.example' } }));
      await expect(relay.reload(configSchema.parse({ ...config, portal: { ...config.portal, listen: 8443 } }))).rejects.toThrow(/web listener changes need a restart: portal 127\.0\.0\.1:0 → portal 127\.0\.0\.1:8443/);
      await expect(relay.reload(configSchema.parse({ ...config, portal: { ...config.portal, listen: 0 }, api: { listen: 0 } }))).rejects.toThrow(/web listener changes need a restart/);
    } finally {
      await relay.close();
    }
  });

  it('a certificate replaced on disk is what new connections get, without a restart', async () => {
    const config = testConfig({ portal: { listen: 0 } });
    const install = (pair: { certPem: string; keyPem: string }) => {
      writeFileSync(config.ingress.cert_file, pair.certPem);
      writeFileSync(config.ingress.key_file, pair.keyPem, { mode: 0o600 });
    };
    mkdirSync(dirname(config.ingress.cert_file), { recursive: true });
    const first = selfSigned({ commonName: 'localhost', altNames: ['localhost', '127.0.0.1'] });
    install(first);
    const relay = await startRelay({ config, logger: createLogger('silent'), certificateCheckMs: 50 });
    try {
      const port = relay.web[0]!.port;
      expect((await httpsGet(port, '/healthz', first.certPem)).peer.fingerprint256).toBe(new X509Certificate(first.certPem).fingerprint256);
      const second = selfSigned({ commonName: 'localhost', altNames: ['localhost', '127.0.0.1'], freshKey: true });
      install(second);
      const want = new X509Certificate(second.certPem).fingerprint256;
      const deadline = Date.now() + 20_000;
      for (;;) {
        const got = await httpsGet(port, '/healthz', second.certPem).catch(() => null);
        if (got?.peer.fingerprint256 === want) break;
        if (Date.now() > deadline) throw new Error('the new certificate was never served');
        await new Promise((r) => setTimeout(r, 50));
      }
    } finally {
      await relay.close();
    }
  });

  it('a listener that cannot bind stops the start with an error that says why', async () => {
    const first = await startRelay({ config: testConfig({ api: { listen: 0 } }), logger: createLogger('silent') });
    try {
      const taken = first.web[0]!.port;
      const config = testConfig({ api: { listen: taken } });
      await expect(startRelay({ config, logger: createLogger('silent') })).rejects.toThrow(/cannot listen for HTTPS: .*EADDRINUSE/);
    } finally {
      await first.close();
    }
  });
});

describe('settings', () => {
  const base = 'ingress:\n  listeners:\n    starttls:\n      port: 2525\n';
  const parse = (extra: string) => parseConfig(base + extra, 'test.yaml', {});

  it('listen: "host:port", "[v6]:port", or a bare port on 127.0.0.1 (private unless an address is named)', () => {
    expect(parse('portal:\n  listen: 8443\n').portal.listen).toEqual({ host: '127.0.0.1', port: 8443 });
    expect(parse('portal:\n  listen: "0.0.0.0:443"\n').portal.listen).toEqual({ host: '0.0.0.0', port: 443 });
    expect(parse('api:\n  listen: "[::1]:9443"\n').api.listen).toEqual({ host: '::1', port: 9443 });
    expect(parse('api:\n  listen: null\n').api.listen).toBeNull();
  });

  it('bad values name the key and line', () => {
    const problem = (extra: string) => {
      try {
        parse(extra);
      } catch (err) {
        return (err as ConfigError).problems[0];
      }
      throw new Error('expected a ConfigError');
    };
    expect(problem('api:\n  listen: "localhost:99999"\n')).toMatchObject({ key: 'api.listen', line: 6 });
    expect(problem('api:\n  listen: "8443x"\n')).toMatchObject({ key: 'api.listen', line: 6 });
    expect(problem('portal:\n  public_url: "http://secure.clinic.example"\n')).toMatchObject({ key: 'portal.public_url', line: 6, message: expect.stringMatching(/https:\/\//) });
    expect(problem('portal:\n  public_url: "https://secure.clinic.example/?a=1"\n')).toMatchObject({ key: 'portal.public_url' });
    expect(problem('api:\n  public_url: "https://x.example"\n')).toMatchObject({ key: 'api.public_url', message: 'unknown key' });
  });
});
