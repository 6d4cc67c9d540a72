// A running relay delivers what `sealrelay sendmail` queued, without a restart or
// a signal (it finds the message at its poll of the store), and the delivery
// leaves the same records and events as one submitted by SMTP to the same relay.
import { execFile } from 'node:child_process';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LogRecord } from '../../src/store/store.ts';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { startMx, type StartedMx } from '../helpers/mx.ts';
import { killIfRunning, spawnRelay, writeConfigFile, type RelayProcess } from '../helpers/relay-process.ts';
import { queueIdOf, submit, testConfig } from '../helpers/relay.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const WAIT_MS = 30_000;

describe('sendmail into a running relay', () => {
  let mx: StartedMx;
  let relay: RelayProcess;
  let configFile: string;
  let storePath: string;

  beforeAll(async () => {
    mx = await startMx('tls13', { name: 'mx.sendmail.test' });
    const config = testConfig({ delivery: { routes: { 'smtp.test': `127.0.0.1:${mx.port}`, 'sendmail.test': `127.0.0.1:${mx.port}` } }, logging: { level: 'info' } });
    storePath = config.store.path;
    configFile = writeConfigFile(dirname(storePath), config);
    relay = await spawnRelay(configFile);
  }, 60_000);

  afterAll(async () => {
    await killIfRunning(relay);
    await mx?.close();
  });

  it('delivers a message queued by `sealrelay sendmail`, with the records and events of an SMTP submission', async () => {
    const body = (to: string) => `From: App <app@clinic.test>\nTo: ${to}\nSubject: lab results ready\n\nplease log in\n`;
    const smtpId = queueIdOf(await submit({ port: relay.ports.starttls!, from: 'app@clinic.test', to: ['a@smtp.test'], body: body('a@smtp.test').replace(/\n/g, '\r\n') }));
    const sent = await new Promise<{ code: number | null; stderr: string }>((done) => {
      const child = execFile(process.execPath, [join(ROOT, 'bin/sealrelay.js'), '-c', configFile, 'sendmail', '-v', '-t', '-i', '-f', 'app@clinic.test'], { cwd: ROOT }, (_err, _out, stderr) =>
        done({ code: child.exitCode, stderr }),
      );
      child.stdin!.end(body('b@sendmail.test'));
    });
    expect(sent.code, sent.stderr).toBe(0);
    const localId = /queued as (\w+)/.exec(sent.stderr)?.[1] as string;

    const deadline = Date.now() + WAIT_MS;
    const arrived = (to: string) => mx.received.find((m) => m.envelope.to.includes(to));
    while (!(arrived('a@smtp.test') && arrived('b@sendmail.test'))) {
      if (Date.now() > deadline) throw new Error(`not delivered within ${WAIT_MS} ms; relay stderr: ${relay.stderr()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const local = arrived('b@sendmail.test')!;
    expect(local.envelope.from).toBe('app@clinic.test');
    expect(local.raw.toString()).toMatch(/^Received: by relay\.sealrelay\.test \(SealRelay\) with local id \w+/);
    expect(local.raw.toString()).toContain('\r\n\r\nplease log in\r\n');

    // The store as the relay left it (read while it runs, as the CLI does); the records are written with the delivery.
    const store = new SqliteStore(storePath);
    try {
      let records: LogRecord[][] = [];
      while (records.length < 2 || records.some((r) => !r.length)) {
        if (Date.now() > deadline) throw new Error('no delivery records');
        records = await Promise.all([smtpId, localId].map((id) => store.queryLog({ message: id })));
        await new Promise((r) => setTimeout(r, 50));
      }
      // Everything but the identities and timings is the same: policy, method, TLS, outcome. (Two domains, so
      // that the second delivery is not told apart by what the first taught the relay about its domain.)
      const comparable = (r: LogRecord) => {
        const { queueId, messageId, at, recipient, domain, durationMs, smtp, ...rest } = r as LogRecord & Record<string, unknown>;
        void [queueId, messageId, at, recipient, domain, durationMs];
        return { ...rest, mx: { ...(rest.mx as object), port: 0 }, smtp: { code: (smtp as { code: number }).code } };
      };
      const [viaSmtp, viaSendmail] = records as [LogRecord[], LogRecord[]];
      expect(viaSendmail.map(comparable)).toEqual(viaSmtp.map(comparable));
      expect(viaSendmail[0]).toMatchObject({ outcome: 'delivered', method: 'tls' });
      const events = await store.listEvents({ limit: 1000 });
      const typesOf = (id: string) => events.filter((e) => e.queueId === id).map((e) => [e.type, e.method, e.tls]);
      expect(typesOf(localId)).toEqual(typesOf(smtpId));
      expect(typesOf(localId).map(([type]) => type)).toContain('queued');
      expect(typesOf(localId).map(([type]) => type)).toContain('delivered');
    } finally {
      await store.close();
    }
  }, 60_000);
});
