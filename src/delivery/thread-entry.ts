// The delivery thread's own side (see thread.ts): the store through its port,
// a logger whose lines go to the relay's log, policy and protection built from
// the config, and the delivery worker of scheduler.ts driven by the relay's messages.
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import type { Config } from '../config/schema.ts';
import type { Env } from '../config/load.ts';
import { loadKeyring } from '../portal/master-keys.ts';
import { loadTrackingKey } from '../reporting/tracking/key.ts';
import { loadProtection } from '../crypto/protection.ts';
import { createLogger } from '../log.ts';
import { createPolicy } from '../policy/decide.ts';
import { ThreadedSqliteStore } from '../store/sqlite/threaded-store.ts';
import { startDelivery } from './scheduler.ts';
import type { FromDeliveryThread, ToDeliveryThread } from './thread.ts';
import type { OwnListener } from './loops.ts';

const relay = parentPort!;
const post = (m: FromDeliveryThread) => relay.postMessage(m);
const { config, storePort, listeners, env, portalUrl } = workerData as {
  config: Config;
  storePort: MessagePort;
  listeners?: readonly OwnListener[];
  /** The variables the config's portal master keys and tracking key name (thread.ts keyEnv), nothing else. */
  env: Env;
  portalUrl: string | null;
};

const store = ThreadedSqliteStore.attach(storePort);
// Lines go to the relay, which writes them with its own: one writer, whole lines.
const logger = createLogger(config.logging.level, { write: (line: string) => post({ type: 'log', line }) });

let delivery: ReturnType<typeof startDelivery>;
try {
  delivery = startDelivery({
    config,
    store,
    logger,
    policy: createPolicy(config),
    protection: await loadProtection(config, store),
    keyring: loadKeyring(config.portal, env),
    trackingKey: loadTrackingKey(config.tracking, env),
    portalUrl,
    listeners,
  });
  post({ type: 'ready' });
} catch (err) {
  // The relay reports the reason and ends the thread; nothing here may outlive it.
  post({ type: 'failed', message: (err as Error).message });
  await store.close();
  relay.close();
}

relay.on('message', (m: ToDeliveryThread) => {
  switch (m.type) {
    case 'kick':
      return delivery.kick();
    case 'listeners':
      return delivery.setListeners(m.listeners);
    case 'portal-url':
      return delivery.setPortalUrl(m.url);
    case 'reload':
      // Whatever refuses the new config — its policy, a key file — is answered, never thrown.
      return void (async () => {
        const policy = createPolicy(m.config);
        const keyring = loadKeyring(m.config.portal, m.env);
        const protection = await loadProtection(m.config, store);
        delivery.reload(m.config, policy, protection, keyring, loadTrackingKey(m.config.tracking, m.env));
        logger.level = m.config.logging.level;
      })().then(
        () => post({ type: 'reloaded' }),
        (err: Error) => post({ type: 'reload-failed', message: err.message }),
      );
    case 'stop':
      return void delivery.stop(m.graceMs).finally(async () => {
        await store.close();
        post({ type: 'stopped' });
        relay.close();
      });
  }
});
