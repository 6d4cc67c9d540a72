// startRelay: the whole relay in one process — store, ingress listeners and the
// delivery worker — built from a Config so that tests start it exactly as
// `sealrelay start` does, on port 0, and stop it in `finally`.
import { lookAt, watchForEdits, type FileLook } from './config/file-watch.ts';
import type { Config } from './config/schema.ts';
import type { Env } from './config/load.ts';
import { startDeliveryThread } from './delivery/thread.ts';
import { certificateExpiry, serverCertificate, type Certificate } from './ingress/dev-cert.ts';
import { startIngress } from './ingress/index.ts';
import { startWebListeners, type WebListenerInfo } from './http/listeners.ts';
import { loadUsers } from './ingress/users.ts';
import type { Logger } from './log.ts';
import { domainsToProbe, startProber } from './domains/prober.ts';
import { startExpirySweep } from './portal/expiry.ts';
import { startRetentionSweep } from './store/retention.ts';
import { startTlsRptJob } from './reporting/tlsrpt/job.ts';
import { loadKeyring } from './portal/master-keys.ts';
import { loadTrackingKey } from './reporting/tracking/key.ts';
import { startWebhookDispatcher } from './events/webhooks/dispatcher.ts';
import { loadWebhookSigners } from './events/webhooks/signing.ts';
import type { NewMessage } from './store/store.ts';
import { fitField } from './events/audit/entry.ts';
import { openRelayStore } from './store/open-store.ts';
import { auditRequest } from './events/audit/request.ts';
import { webhookMetrics } from './events/webhooks/metrics.ts';
import type { ApiRequestRecord } from './http/api/index.ts';
import { startStatusFile, statusFileOf } from './relay-status.ts';
import pkg from '../package.json' with { type: 'json' };

/** How often the users file is checked for changes, in ms. */
const USERS_FILE_POLL_MS = 2000;
/** How often a running relay looks at its certificate's expiry (and renews its own development pair), in ms. */
const CERTIFICATE_CHECK_MS = 24 * 60 * 60 * 1000;

export interface Relay {
  readonly listeners: readonly { name: string; host: string; port: number; tls: string }[];
  readonly storePath: string;
  /** The HTTPS listeners (portal.listen, api.listen); empty unless configured. */
  readonly web: readonly WebListenerInfo[];
  /** Stops accepting, lets deliveries in flight finish (bounded), closes the store. */
  close(): Promise<void>;
  /** New settings for new connections and the next deliveries; listeners keep their sockets. */
  reload(config: Config): Promise<void>;
}

export async function startRelay(opts: {
  config: Config;
  logger: Logger;
  configFile?: string;
  /** Tests shorten the daily certificate check. */
  certificateCheckMs?: number;
  /** `start --dev-cert`: a missing pair is generated whatever its file names (by default only sealrelay-dev.crt/.key are). */
  devCert?: boolean;
  /** The environment main.ts captured: portal master keys may be read from it. */
  env?: Env;
}): Promise<Relay> {
  let config = opts.config;
  const { logger } = opts;
  const env = opts.env ?? {};
  // The portal's master keys (delivery's thread reads its own); a key that cannot be read stops the start.
  let keyring = loadKeyring(config.portal, env);
  // The key that signs tracking links (delivery's thread reads its own); a key that cannot be read stops the start.
  let trackingKey = loadTrackingKey(config.tracking, env);
  // Webhook signing secrets: one that cannot be read (or is too short) stops the start too.
  const webhookSigners = loadWebhookSigners(config.webhooks, env);
  const credentials = (cfg: Config) =>
    noteCertificate(serverCertificate(cfg.ingress.cert_file, cfg.ingress.key_file, cfg.server.hostname, { anyPath: opts.devCert === true }), cfg.ingress.cert_file, logger);
  const initialCert = credentials(config);

  // What has started so far, undone in reverse order when a later step fails.
  const started: (() => unknown)[] = [];
  let store: Awaited<ReturnType<typeof openRelayStore>>;
  let delivery: Awaited<ReturnType<typeof startDeliveryThread>>;
  let ingress: Awaited<ReturnType<typeof startIngress>>;
  let web: Awaited<ReturnType<typeof startWebListeners>>;
  /** The users file as it was read at start: any edit after that is picked up. */
  let usersLook: FileLook | null = null;
  try {
    store = await openRelayStore(config.store, (message) => logger.error({ event: 'store.error', err: message }, 'store thread reported a background failure'), env);
    started.push(() => store.close());
    await refuseUnreadableBodies(store, config);
    const interrupted = await store.recoverInterrupted();
    if (interrupted) {
      logger.warn({ event: 'store.recovered', interrupted }, `${interrupted} recipient(s) were mid-attempt when the last run stopped: retrying them now (each may arrive twice)`);
    }
    delivery = await startDeliveryThread({ config, store, logger, env });
    usersLook = lookAt(config.ingress.users_file);
    started.push(() => delivery.stop(0));
    // Before ingress, so that a web listener that cannot bind is undone with the rest.
    // The portal's pages open items with the keyring, and queue codes and replies like any mail.
    const portal = {
      store,
      keyring: () => keyring,
      queueMail: async (message: NewMessage) => {
        await store.enqueue(message);
        delivery.kick();
      },
    };
    // The REST API queues mail as ingress does, and wakes delivery for it.
    // Every API request leaves an audit entry (who, what, from where); a failed write is logged, never the request's answer.
    const api = {
      store,
      kick: () => delivery.kick(),
      onRequestDone: (r: ApiRequestRecord) =>
        void auditRequest(store, r).catch((err: Error) => logger.error({ event: 'audit.failed', err: err.message }, 'could not write the audit entry of an API request')),
    };
    // /metrics reads the events and the queue, and the webhooks' backlog under the config of the moment.
    const metrics = { store, maxQueueMs: config.delivery.retry.lifetime_seconds * 1000, webhooks: () => webhookMetrics(store, config.webhooks) };
    web = await startWebListeners({ config, logger, tls: initialCert, portal, api, metrics, tracking: { store, key: () => trackingKey } });
    started.push(() => web.close());
    // Notifications link to portal.public_url, else to where the portal listener is bound.
    delivery.setPortalUrl(web.listeners.find((l) => l.name === 'portal')?.url ?? null);
    ingress = await startIngress({
      config,
      store,
      logger,
      tlsCredentials: initialCert,
      users: loadUsers(config.ingress.users_file),
      onQueued: () => delivery.kick(),
    });
  } catch (err) {
    for (const undo of started.reverse()) await undo();
    throw err;
  }
  const watchDomains = (cfg: Config) =>
    startProber({
      config: cfg,
      logger,
      intervalMs: cfg.domains.probe_interval_seconds * 1000,
      domains: async () => domainsToProbe(cfg, await store.listDomains(), { now: Date.now(), recentDays: cfg.domains.probe_recent_days }),
      record: (domain, observation) => store.recordProbe(domain, observation),
    });
  let prober = watchDomains(config);
  // Portal items past their expiry lose their ciphertext (portal/expiry.ts); restarted on reload for a new interval.
  const sweepExpired = (cfg: Config) => startExpirySweep({ store, logger, intervalMs: cfg.portal.expiry_sweep_seconds * 1000 });
  let expirySweep = sweepExpired(config);
  // Old evidence of finished messages is pruned by retention's ages (store/retention.ts); restarted on reload.
  const startPruning = (cfg: Config) => startRetentionSweep({ store, logger, retention: cfg.retention });
  let retention = startPruning(config);
  // Daily TLS reports (RFC 8460) of yesterday's sessions; mailed ones are queued here like any mail. Restarted on reload.
  const startTlsReports = (cfg: Config) =>
    startTlsRptJob({
      store,
      config: cfg,
      logger,
      queueMail: async (message: NewMessage) => {
        await store.enqueue(message);
        delivery.kick();
      },
    });
  let tlsReports = startTlsReports(config);
  // Sends the events to the configured endpoints, signed; updated in place on reload.
  const webhooks = startWebhookDispatcher({ store, logger, config: config.webhooks, signers: webhookSigners });
  const listeners = ingress.listeners.map((l) => ({ name: l.name, host: l.host, port: l.port, tls: l.tls }));
  // Delivery never hands mail to these (a route or MX pointing back here is a loop); ports are known only now.
  delivery.setListeners(listeners);
  // For `sealrelay status`: the bound ports and the delivery thread's health (relay-status.ts).
  const startedAt = Date.now();
  const statusFile = config.store.path === ':memory:' ? null : startStatusFile(statusFileOf(config.store.path), () => ({
    pid: process.pid,
    version: pkg.version,
    startedAt,
    listeners,
    web: web.listeners.map((l) => ({ name: l.name, url: l.url })),
    delivery: delivery.health(),
  }));
  logger.info(
    { event: 'relay.started', listeners, store: { driver: config.store.driver, path: config.store.path }, configFile: opts.configFile },
    `SealRelay listening on ${listeners.map((l) => `${l.host}:${l.port} (${l.tls})`).join(', ')}; store ${config.store.driver} ${config.store.path}`,
  );

  // `sealrelay user add` edits the users file while we run: pick it up without a SIGHUP.
  let cert = initialCert;
  const stopUsersWatch = watchForEdits(config.ingress.users_file, usersLook, USERS_FILE_POLL_MS, () => {
    try {
      ingress.reload(config, cert, loadUsers(config.ingress.users_file));
      logger.info({ event: 'relay.reloaded', usersFile: config.ingress.users_file }, 'users file changed: accounts reloaded');
    } catch (err) {
      logger.error({ event: 'relay.reload_failed', usersFile: config.ingress.users_file, err: (err as Error).message }, 'users file changed but cannot be loaded; keeping the old accounts');
    }
  });

  // A relay that runs for months still hears about a lapsing certificate, its own pair is
  // renewed in time, and a pair replaced on disk (say, by certbot) is served from then on.
  const certificateCheck = setInterval(() => {
    try {
      const checked = credentials(config);
      if (checked.cert === cert.cert && checked.key === cert.key) return;
      ingress.reload(config, checked, loadUsers(config.ingress.users_file));
      web.setTls(checked);
      cert = checked;
      logger.info({ event: 'relay.reloaded', certFile: config.ingress.cert_file, notAfter: checked.notAfter.toISOString() }, 'certificate changed on disk: new sessions get the new one');
    } catch (err) {
      logger.error({ event: 'relay.reload_failed', certFile: config.ingress.cert_file, err: (err as Error).message }, 'certificate check failed; keeping the certificate in use');
    }
  }, opts.certificateCheckMs ?? CERTIFICATE_CHECK_MS);
  certificateCheck.unref();

  let closing: Promise<void> | null = null;
  return {
    listeners,
    storePath: config.store.path,
    web: web.listeners,
    close() {
      closing ??= (async () => {
        statusFile?.stop();
        stopUsersWatch();
        clearInterval(certificateCheck);
        await prober.stop();
        await expirySweep.stop();
        await retention.stop();
        await tlsReports?.stop();
        await webhooks.stop();
        await web.close();
        await ingress.stopAccepting();
        await delivery.stop(config.delivery.shutdown_grace_seconds * 1000);
        await ingress.close();
        await store.close();
      })();
      return closing;
    },
    async reload(next) {
      const users = loadUsers(next.ingress.users_file);
      const nextCert = credentials(next);
      if (next.store.path !== config.store.path || next.store.driver !== config.store.driver) {
        throw new Error('store changes need a restart');
      }
      ingress.checkReload(next, nextCert, users);
      web.checkReload(next);
      const nextKeyring = loadKeyring(next.portal, env);
      const nextTrackingKey = loadTrackingKey(next.tracking, env);
      const nextWebhookSigners = loadWebhookSigners(next.webhooks, env);
      // First the part that may still refuse (the thread builds the policy and loads the key files), then the rest.
      await delivery.reload(next);
      ingress.reload(next, nextCert, users);
      web.reload(next, nextCert);
      keyring = nextKeyring;
      trackingKey = nextTrackingKey;
      webhooks.update(next.webhooks, nextWebhookSigners);
      await prober.stop();
      prober = watchDomains(next);
      await expirySweep.stop();
      expirySweep = sweepExpired(next);
      await retention.stop();
      retention = startPruning(next);
      await tlsReports?.stop();
      tlsReports = startTlsReports(next);
      config = next;
      cert = nextCert;
      // SIGHUP (cli/start.ts) is what asks for a reload: the policy may now decide differently. The reload
      // has taken effect by now, so a trail that cannot be written is logged rather than failing it.
      await store
        .appendAudit({ actor: { kind: 'relay', name: 'SIGHUP' }, action: 'policy.reload', target: opts.configFile ? fitField(opts.configFile) : null, detail: 'config reloaded' })
        .catch((err: Error) => logger.error({ event: 'audit.failed', action: 'policy.reload', err: err.message }, 'reload not recorded in the audit trail'));
    },
  };
}

/**
 * Bodies sealed under a key store.encryption no longer lists could not be delivered:
 * say so now, naming the key, rather than fail message by message.
 */
async function refuseUnreadableBodies(store: { bodyKeysInUse(): Promise<{ keyId: string | null; parts: number }[]> }, config: Config): Promise<void> {
  const listed = new Set(config.store.encryption.keys.map((k) => k.id));
  const missing = (await store.bodyKeysInUse()).filter((k) => k.keyId !== null && !listed.has(k.keyId));
  if (missing.length) {
    const names = missing.map((k) => `${k.keyId} (${k.parts} part(s))`).join(', ');
    throw new Error(`queued message bodies are encrypted with key(s) store.encryption.keys does not list: ${names}; add the key(s) back`);
  }
}

/** Logs what the operator should know about the submission certificate: made, renewed, lapsing or lapsed. */
function noteCertificate(c: Certificate, certFile: string, logger: Logger): Certificate {
  const notAfter = c.notAfter.toISOString();
  if (c.generated) logger.warn({ event: 'relay.dev_cert_generated', certFile, notAfter }, 'generated a self-signed development certificate');
  if (c.renewed) logger.warn({ event: 'relay.dev_cert_renewed', certFile, notAfter }, 'renewed the self-signed development certificate before it expired');
  const { daysLeft, state } = certificateExpiry(c.notAfter);
  if (state === 'expired') {
    logger.error({ event: 'relay.cert_expired', certFile, notAfter }, `the submission certificate ${certFile} expired on ${notAfter}: clients that verify it will refuse TLS`);
  } else if (state === 'expiring') {
    logger.warn({ event: 'relay.cert_expiring', certFile, notAfter, daysLeft }, `the submission certificate ${certFile} expires in ${daysLeft} day(s), on ${notAfter}`);
  }
  return c;
}
