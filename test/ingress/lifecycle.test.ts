// stopAccepting / close / reload of startIngress.
import net from 'node:net';
import { X509Certificate } from 'node:crypto';
import { describe, expect, test } from 'vitest';
import { generateSelfSigned } from '../../src/ingress/dev-cert.ts';
import { startIngress } from '../../src/ingress/index.ts';
import { createLogger } from '../../src/log.ts';
import { ingressConfig, plain, RawClient, RecordingStore, runSteps, startTestIngress, testCertificate, testUsers, type Step } from './harness.ts';

const EHLO: Step = ['EHLO app.clinic.test', 250];

function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(false);
    });
    s.once('error', () => resolve(true));
  });
}

describe('stopAccepting', () => {
  test('idle sessions get 421 4.3.2 at once; a session in DATA finishes with 250; new connections are refused', async () => {
    const t = await startTestIngress({ drainTimeoutMs: 5000 });
    try {
      const idle = await RawClient.open(t.port());
      await runSteps(idle, [EHLO, ['MAIL FROM:<a@clinic.test>', 250]]);
      const busy = await RawClient.open(t.port());
      await runSteps(busy, [EHLO, ['MAIL FROM:<a@clinic.test>', 250], ['RCPT TO:<p@example.test>', 250], ['DATA', 354]]);
      // In DATA since its 354 (ingress marks the session before smtp-server sends it).
      busy.write('Subject: in flight\r\n\r\nfirst half\r\n');

      const started = Date.now();
      const stopped = t.ingress.stopAccepting();
      const bye = await idle.reply();
      expect(bye.code).toBe(421);
      expect(bye.text).toMatch(/^4\.3\.2 /);
      await idle.whenClosed();
      expect(await refused(t.port())).toBe(true);

      busy.write('second half\r\n.\r\n');
      const done = await busy.reply();
      expect(done.code).toBe(250);
      expect(t.store.messages.map((m) => m.subject)).toEqual(['in flight']);
      // anything after the transaction is refused, and the session ends
      expect((await busy.cmd('MAIL FROM:<a@clinic.test>')).code).toBe(421);
      await busy.whenClosed();
      await stopped;
      expect(Date.now() - started).toBeLessThan(4000);
    } finally {
      await t.close();
    }
  });

  test('bounded: a session that never finishes DATA is cut off after the drain timeout', async () => {
    const t = await startTestIngress({ drainTimeoutMs: 400 });
    try {
      const slow = await RawClient.open(t.port());
      await runSteps(slow, [EHLO, ['MAIL FROM:<a@clinic.test>', 250], ['RCPT TO:<p@example.test>', 250], ['DATA', 354]]);
      slow.write('Subject: never ends\r\n\r\n');
      const started = Date.now();
      await t.ingress.stopAccepting();
      expect(Date.now() - started).toBeGreaterThanOrEqual(350);
      expect(Date.now() - started).toBeLessThan(3000);
      expect((await slow.reply()).code).toBe(421);
      expect(t.store.messages).toHaveLength(0);
    } finally {
      await t.close();
    }
  });

  test('close() ends every session now, even in DATA, and is idempotent', async () => {
    const t = await startTestIngress({ drainTimeoutMs: 30_000 });
    const c = await RawClient.open(t.port());
    await runSteps(c, [EHLO, ['MAIL FROM:<a@clinic.test>', 250], ['RCPT TO:<p@example.test>', 250], ['DATA', 354]]);
    const started = Date.now();
    await t.close();
    await t.close();
    expect(Date.now() - started).toBeLessThan(3000);
    await c.whenClosed();
    expect(await refused(t.port())).toBe(true);
  });
});

describe('reload', () => {
  test('new limits and users apply to new connections; open ones keep theirs', async () => {
    const config = ingressConfig({ max_recipients: 1, relay_networks: ['127.0.0.1/32'] });
    const t = await startTestIngress({ config, users: await testUsers({ old: { password: 'pw' } }) });
    try {
      const before = await RawClient.open(t.port());
      await runSteps(before, [EHLO]);
      t.ingress.reload(ingressConfig({ max_recipients: 3, relay_networks: [] }), testCertificate(), await testUsers({ fresh: { password: 'pw2' } }));
      // the open connection still runs under the old settings
      await runSteps(before, [['MAIL FROM:<a@clinic.test>', 250], ['RCPT TO:<one@example.test>', 250], ['RCPT TO:<two@example.test>', 452]]);
      // a new one gets the new ones: not in relay_networks any more, new account, 3 recipients
      const after = await RawClient.open(t.port());
      await after.ehlo();
      await after.starttls();
      await runSteps(after, [
        EHLO,
        ['MAIL FROM:<a@clinic.test>', 554],
        [plain('old', 'pw'), 535],
        [plain('fresh', 'pw2'), 235],
        ['MAIL FROM:<a@clinic.test>', 250],
        ['RCPT TO:<one@example.test>', 250],
        ['RCPT TO:<two@example.test>', 250],
        ['RCPT TO:<three@example.test>', 250],
        ['RCPT TO:<four@example.test>', 452],
      ]);
      before.destroy();
      after.destroy();
    } finally {
      await t.close();
    }
  });

  test('a new certificate is presented to new TLS sessions', async () => {
    const t = await startTestIngress();
    try {
      const next = generateSelfSigned('renewed.ingress.test');
      t.ingress.reload(ingressConfig(), next, new Map());
      const c = await RawClient.open(t.port());
      await c.ehlo();
      await c.starttls();
      const presented = c.tlsSocket!.getPeerX509Certificate()!;
      expect(presented.fingerprint256).toBe(new X509Certificate(next.cert).fingerprint256);
      c.destroy();
    } finally {
      await t.close();
    }
  });

  test('changing listeners needs a restart: reload throws and changes nothing', async () => {
    const t = await startTestIngress({ config: ingressConfig({ max_recipients: 1 }) });
    try {
      const moved = ingressConfig({ max_recipients: 5, listeners: { submission: { host: '127.0.0.1', port: 0, tls: 'required' } } });
      expect(() => t.ingress.reload(moved, testCertificate(), new Map())).toThrow(/listener changes need a restart/);
      expect(() => t.ingress.reload(ingressConfig(), { cert: 'bad', key: 'bad' }, new Map())).toThrow();
      const c = await RawClient.open(t.port());
      await runSteps(c, [EHLO, ['MAIL FROM:<a@clinic.test>', 250], ['RCPT TO:<one@example.test>', 250], ['RCPT TO:<two@example.test>', 452]]);
      c.destroy();
    } finally {
      await t.close();
    }
  });
});

describe('startIngress', () => {
  test('several listeners, each reported with its bound port', async () => {
    const config = ingressConfig({
      listeners: {
        submission: { host: '127.0.0.1', port: 0, tls: 'starttls' },
        submissions: { host: '127.0.0.1', port: 0, tls: 'implicit' },
        strict: { host: '127.0.0.1', port: 0, tls: 'required' },
      },
    });
    const t = await startTestIngress({ config });
    try {
      expect(t.ingress.listeners.map((l) => [l.name, l.host, l.tls])).toEqual([
        ['submission', '127.0.0.1', 'starttls'],
        ['submissions', '127.0.0.1', 'implicit'],
        ['strict', '127.0.0.1', 'required'],
      ]);
      for (const l of t.ingress.listeners) expect(l.port).toBeGreaterThan(0);
      const implicit = await RawClient.open(t.port('submissions'), { implicitTls: true });
      expect(implicit.tlsSocket?.getProtocol()).toBe('TLSv1.3');
      const ehlo = await implicit.ehlo();
      expect(ehlo.lines).not.toContain('STARTTLS');
      implicit.destroy();
    } finally {
      await t.close();
    }
  });

  test('a port already in use fails startIngress and leaves nothing listening', async () => {
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', () => r()));
    const busyPort = (blocker.address() as net.AddressInfo).port;
    try {
      const config = ingressConfig({
        listeners: { first: { host: '127.0.0.1', port: 0, tls: 'starttls' }, second: { host: '127.0.0.1', port: busyPort, tls: 'starttls' } },
      });
      await expect(startTestIngress({ config })).rejects.toThrow(/cannot listen: .*EADDRINUSE/);
    } finally {
      blocker.close();
    }
  });

  test('a bind failure is not also logged as a failed inbound connection', async () => {
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', () => r()));
    const busyPort = (blocker.address() as net.AddressInfo).port;
    const lines: string[] = [];
    const logger = createLogger('debug', { write: (line: string) => void lines.push(line) });
    try {
      const config = ingressConfig({ listeners: { busy: { host: '127.0.0.1', port: busyPort, tls: 'starttls' } } });
      await expect(startIngress({ config, store: new RecordingStore(), logger, tlsCredentials: testCertificate(), users: new Map() })).rejects.toThrow(/EADDRINUSE/);
      await new Promise((r) => setTimeout(r, 50));
      expect(lines.filter((l) => l.includes('ingress.connection_error'))).toEqual([]);
    } finally {
      blocker.close();
    }
  });

  test('TLS below 1.2 is refused', async () => {
    const t = await startTestIngress();
    try {
      const c = await RawClient.open(t.port());
      await c.ehlo();
      await expect(c.starttls({ maxVersion: 'TLSv1.1', minVersion: 'TLSv1' })).rejects.toThrow();
      c.destroy();
    } finally {
      await t.close();
    }
  });
});
