// The one pino logger. Child loggers carry stable fields (queueId, seq, domain,
// listener) and every line has an `event` from EVENTS, so logs can be queried
// without parsing sentences. Message bodies are never logged; subjects only when
// logging.log_subjects is true (the caller decides, with `subjectField`).
import { pino, type Logger, type DestinationStream } from 'pino';

export type { Logger };

export const EVENTS = [
  'relay.started',
  'relay.dev_cert_generated',
  'relay.dev_cert_renewed',
  'relay.cert_expiring',
  'relay.cert_expired',
  'relay.stopping',
  'relay.stopped',
  'relay.reloaded',
  'relay.reload_failed',
  'ingress.connect',
  'ingress.connection_error',
  'ingress.auth_failed',
  'ingress.auth_throttled',
  'ingress.relay_denied',
  'ingress.rejected',
  'ingress.queued',
  'delivery.record',
  'delivery.connection_failed',
  'delivery.bounce_queued',
  'delivery.error',
  'delivery.restarted',
  'domains.mta_sts',
  'domains.probe',
  'store.error',
  'store.recovered',
  // Retention (store/retention.ts): what a run pruned (counts only), or that it failed.
  'store.pruned',
  'store.prune_failed',
  // The log destination itself (log-destination.ts): failed, written again, lines lost at exit.
  'log.failed',
  'log.resumed',
  'log.lost',
  // A rotated log file beyond logging.rotate.keep that could not be removed (log-file.ts).
  'log.prune_failed',
  // Operator actions (`sealrelay queue ...`), logged by the command that made them.
  'queue.deleted',
  'queue.held',
  'queue.released',
  'queue.flushed',
  // Portal items: erased at expiry (the relay's sweep or `sealrelay portal expire`), recalled and rewrapped by operators.
  'portal.expired',
  'portal.expiry_failed',
  'portal.recalled',
  'portal.rewrapped',
  // The web listeners (src/http/): started and stopped, a request that failed, refusals by the CSRF check and rate limits.
  'http.started',
  'http.stopped',
  'http.error',
  'http.csrf_refused',
  'http.rate_limited',
  'http.exposed',
  // Webhooks (events/webhooks/): a request that failed (retried), a delivery given up, a turn that failed, pruning, a replay (`sealrelay webhooks replay`).
  'webhooks.failed',
  'webhooks.gave_up',
  'webhooks.error',
  'webhooks.pruned',
  'webhooks.replayed',
  // The REST API (src/http/api/): refused tokens (never the token itself), a repeat answered from its Idempotency-Key, an evidence key that cannot sign.
  'api.auth_failed',
  'api.forbidden',
  'api.replayed',
  'api.evidence_key',
  // The audit trail (src/events/audit/): an entry that could not be written.
  'audit.failed',
] as const;
export type LogEvent = (typeof EVENTS)[number];

export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'sealrelay' },
      timestamp: pino.stdTimeFunctions.isoTime,
      // Belt and braces: even if a caller passes one, these never reach the log.
      redact: { paths: ['body', 'raw', 'password', 'pass', '*.body', '*.password'], remove: true },
    },
    destination,
  );
}

export function subjectField(subject: string | null, allowed: boolean): { subject?: string } {
  return allowed && subject !== null ? { subject } : {};
}
