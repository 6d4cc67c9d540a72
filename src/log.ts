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
  // The log destination itself (log-destination.ts): failed, written again, lines lost at exit.
  'log.failed',
  'log.resumed',
  'log.lost',
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
