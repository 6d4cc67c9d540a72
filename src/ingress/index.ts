// Ingress: applications submit mail over SMTP; each accepted message is committed
// to the store before the client hears "250 2.0.0 Ok: queued as <id>".
//
//   startIngress → one smtp-server per config.ingress.listeners entry (server.ts)
//                  sharing one session policy (sessions.ts)
//   stopAccepting → listeners closed; sessions in DATA finish (bounded), others get 421
//   close         → everything ends now
//   reload        → new settings, users and certificate for new connections;
//                   changing the listeners themselves needs a restart
import { createSecureContext } from 'node:tls';
import type { Config } from '../config/schema.ts';
import type { Logger } from '../log.ts';
import type { IngressStore } from './accept.ts';
import type { ListenerTls } from './auth.ts';
import { closeListener, openListener, stopListener, updateListener, type Listener, type ListenerSpec, type TlsCredentials } from './server.ts';
import { IngressSessions } from './sessions.ts';
import { settingsFrom } from './settings.ts';
import type { UserDirectory } from './users.ts';

export type { TlsCredentials } from './server.ts';
export type { UserDirectory, User } from './users.ts';

/**
 * Upper bound on how long stopAccepting waits for sessions in DATA. Kept short:
 * `sealrelay start` then waits delivery.shutdown_grace_seconds for delivery, and a
 * client cut off here still holds its message and retries.
 */
const DRAIN_MAX_MS = 10_000;

export interface IngressOptions {
  config: Config;
  store: IngressStore;
  logger: Logger;
  tlsCredentials: TlsCredentials;
  users: UserDirectory;
  /** Called after each message is committed and acknowledged (e.g. to wake delivery). */
  onQueued?: (queueId: string) => void;
  /** Overrides the drain bound of stopAccepting (ms); default min(10 s, delivery.shutdown_grace_seconds). */
  drainTimeoutMs?: number;
}

export interface Ingress {
  readonly listeners: readonly { name: string; host: string; port: number; tls: ListenerTls }[];
  stopAccepting(): Promise<void>;
  close(): Promise<void>;
  reload(config: Config, tlsCredentials: TlsCredentials, users: UserDirectory): void;
  /** Throws what reload would throw, changing nothing: lets the relay refuse a reload before any part of it changed. */
  checkReload(config: Config, tlsCredentials: TlsCredentials, users: UserDirectory): void;
}

export async function startIngress(opts: IngressOptions): Promise<Ingress> {
  const specs = listenerSpecs(opts.config);
  if (specs.length === 0) throw new Error('config.ingress.listeners is empty: nothing to listen on');
  const sessions = new IngressSessions({ settings: settingsFrom(opts.config, opts.users), store: opts.store, logger: opts.logger, onQueued: opts.onQueued });
  let drainMs = opts.drainTimeoutMs ?? Math.min(DRAIN_MAX_MS, opts.config.delivery.shutdown_grace_seconds * 1000);

  const listeners: Listener[] = [];
  try {
    for (const spec of specs) listeners.push(await openListener(spec, sessions, opts.tlsCredentials));
  } catch (err) {
    for (const l of listeners) closeListener(l);
    await Promise.all(listeners.map((l) => stopListener(l, sessions, 1)));
    throw new Error(`cannot listen: ${(err as Error).message}`, { cause: err });
  }
  let configured = specs;
  /** The settings a reload would run with; throws, changing nothing, on what it cannot take. */
  const checked = (config: Config, tlsCredentials: TlsCredentials, users: UserDirectory) => {
    const changed = describeListenerChange(configured, listenerSpecs(config));
    if (changed) throw new Error(`listener changes need a restart: ${changed}`);
    const settings = settingsFrom(config, users);
    createSecureContext({ key: tlsCredentials.key, cert: tlsCredentials.cert });
    return settings;
  };
  let stopping: Promise<void> | null = null;
  const stopAccepting = () => (stopping ??= Promise.all(listeners.map((l) => stopListener(l, sessions, drainMs))).then(() => undefined));

  return {
    listeners: listeners.map((l) => ({ name: l.spec.name, host: l.spec.host, port: l.port, tls: l.spec.tls })),
    stopAccepting,
    async close() {
      const stopped = stopAccepting();
      for (const l of listeners) closeListener(l);
      await stopped;
    },
    checkReload(config, tlsCredentials, users) {
      checked(config, tlsCredentials, users);
    },
    reload(config, tlsCredentials, users) {
      // Everything that can fail is checked before anything changes.
      const settings = checked(config, tlsCredentials, users);
      sessions.reload(settings);
      for (const l of listeners) updateListener(l, sessions, tlsCredentials);
      configured = listenerSpecs(config);
      if (opts.drainTimeoutMs === undefined) drainMs = Math.min(DRAIN_MAX_MS, config.delivery.shutdown_grace_seconds * 1000);
    },
  };
}

function listenerSpecs(config: Config): ListenerSpec[] {
  return Object.entries(config.ingress.listeners).map(([name, l]) => ({ name, host: l.host, port: l.port, tls: l.tls }));
}

function describeListenerChange(before: readonly ListenerSpec[], after: readonly ListenerSpec[]): string | null {
  const key = (s: ListenerSpec) => `${s.name} ${s.host}:${s.port} (${s.tls})`;
  const a = before.map(key).sort().join(', ');
  const b = after.map(key).sort().join(', ');
  return a === b ? null : `${a} → ${b}`;
}
