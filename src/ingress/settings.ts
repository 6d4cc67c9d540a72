// The settings one inbound connection runs under, built from Config (and the
// users file) once per start or reload. A connection takes the current settings
// when it arrives and keeps them to the end, so a reload never changes the rules
// halfway through a session.
import { dirname } from 'node:path';
import type { Config } from '../config/schema.ts';
import { greetingSettingsFrom, type GreetingSettings } from './greeting.ts';
import { NetworkList } from './networks.ts';
import type { ReportHeaders } from './received.ts';
import type { UserDirectory } from './users.ts';

export interface IngressSettings {
  /** Our name: greeting, Received "by", added Message-IDs. */
  readonly hostname: string;
  readonly relayNetworks: NetworkList;
  readonly plaintextAuthNetworks: NetworkList;
  readonly requireTlsNetworks: NetworkList;
  readonly maxMessageBytes: number;
  readonly maxRecipients: number;
  readonly maxLineBytes: number;
  readonly maxConnectionsPerIp: number;
  /** Inbound connections at once across every client and listener. */
  readonly maxConnections: number;
  /** Message bytes held at once across sessions (receive-budget.ts). */
  readonly receiveBudgetBytes: number;
  /** Received: fields a message may already carry (Postfix hop_count_limit). */
  readonly maxHops: number;
  /** Where RCPT TO:<postmaster> goes; null refuses it. */
  readonly postmaster: string | null;
  /** Recipient domains (lower case) that delivery.routes names: exempt from the unroutable-domain check. */
  readonly routedDomains: ReadonlySet<string>;
  readonly authFailureLimit: number;
  readonly authFailureWindowMs: number;
  readonly socketTimeoutMs: number;
  readonly logSubjects: boolean;
  /** The headers reports read (reports.campaign_header, reports.custom_header); the campaign header is stripped. */
  readonly reportHeaders: ReportHeaders;
  readonly users: UserDirectory;
  /** The store file's directory: MAIL FROM checks the free space there (free-space.ts). */
  readonly storeDir: string;
  /** Free bytes the store's file system must keep beyond a declared SIZE, or MAIL FROM gets 452 4.3.1. */
  readonly queueMinfreeBytes: number;
  /** Per listener name: when the greeting is given and whether the client's name is looked up (greeting.ts). */
  readonly greetings: ReadonlyMap<string, GreetingSettings>;
}

export function settingsFrom(config: Config, users: UserDirectory): IngressSettings {
  const ingress = config.ingress;
  return Object.freeze({
    hostname: config.server.hostname,
    relayNetworks: new NetworkList(ingress.relay_networks),
    plaintextAuthNetworks: new NetworkList(ingress.auth_plaintext_networks),
    requireTlsNetworks: new NetworkList(ingress.require_tls_networks),
    maxMessageBytes: ingress.max_message_bytes,
    maxRecipients: ingress.max_recipients,
    maxLineBytes: ingress.max_line_bytes,
    maxConnectionsPerIp: ingress.max_connections_per_ip,
    maxConnections: ingress.max_connections,
    receiveBudgetBytes: ingress.receive_budget_bytes,
    maxHops: ingress.max_hops,
    postmaster: ingress.postmaster,
    routedDomains: new Set(Object.keys(config.delivery.routes).map((d) => d.toLowerCase())),
    authFailureLimit: ingress.auth_failure_limit,
    authFailureWindowMs: ingress.auth_failure_window_seconds * 1000,
    socketTimeoutMs: ingress.socket_timeout_seconds * 1000,
    logSubjects: config.logging.log_subjects,
    reportHeaders: { campaign: config.reports.campaign_header, custom: config.reports.custom_header },
    users,
    storeDir: dirname(config.store.path),
    // Postfix's default: room for one and a half of the largest message.
    queueMinfreeBytes: ingress.queue_minfree_bytes ?? Math.ceil(1.5 * ingress.max_message_bytes),
    greetings: greetingSettingsFrom(config),
  });
}
