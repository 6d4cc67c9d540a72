// The SQLite store's TLS reports (schema 22; reporting/tlsrpt/state.ts tells the
// model). SqliteStore runs each method in a transaction of its own.
import type Database from 'better-sqlite3';
import type { DueTlsReport, NewTlsReport, TlsReportSend, TlsReportSettlement } from '../../reporting/tlsrpt/state.ts';

/** An error kept per destination is cut to this many characters (an HTTP body or SMTP reply may be long). */
const ERROR_CHARS = 500;

const SEND_COLUMNS = `s.report_id AS reportId, r.domain, r.day, s.destination, s.status, s.attempts, s.next_at AS nextAt,
  s.give_up_at AS giveUpAt, s.last_error AS lastError, s.sent_at AS sentAt`;

export class TlsRptTable {
  private readonly stmt;

  constructor(db: Database.Database) {
    this.stmt = {
      dayDone: db.prepare(`SELECT 1 FROM tlsrpt_days WHERE day = ?`).pluck(),
      markDay: db.prepare(`INSERT OR IGNORE INTO tlsrpt_days (day, done_at) VALUES (?, ?)`),
      // A report made twice for one domain and day (a second run after a crash) keeps the first.
      insertReport: db.prepare(
        `INSERT OR IGNORE INTO tlsrpt_reports (report_id, domain, day, created_at, json) VALUES (@reportId, @domain, @day, @now, @json)`,
      ),
      insertSend: db.prepare(
        `INSERT OR IGNORE INTO tlsrpt_sends (report_id, destination, status, next_at, give_up_at) VALUES (?, ?, 'pending', ?, ?)`,
      ),
      due: db.prepare(
        `SELECT ${SEND_COLUMNS}, r.json FROM tlsrpt_sends s JOIN tlsrpt_reports r ON r.report_id = s.report_id
         WHERE s.status = 'pending' AND s.next_at <= @now ORDER BY s.next_at LIMIT (@limit + 0)`,
      ),
      sent: db.prepare(
        `UPDATE tlsrpt_sends SET status = 'sent', attempts = attempts + 1, sent_at = @at, next_at = @at, last_error = NULL
         WHERE report_id = @reportId AND destination = @destination AND status = 'pending'`,
      ),
      retry: db.prepare(
        `UPDATE tlsrpt_sends SET attempts = attempts + 1, next_at = @nextAt, last_error = @error
         WHERE report_id = @reportId AND destination = @destination AND status = 'pending'`,
      ),
      failed: db.prepare(
        `UPDATE tlsrpt_sends SET status = 'failed', attempts = attempts + 1, next_at = @at, last_error = @error
         WHERE report_id = @reportId AND destination = @destination AND status = 'pending'`,
      ),
      list: db.prepare(
        `SELECT ${SEND_COLUMNS} FROM tlsrpt_sends s JOIN tlsrpt_reports r ON r.report_id = s.report_id
         WHERE (@domain IS NULL OR r.domain = @domain) ORDER BY r.day DESC, r.domain, s.destination LIMIT (@limit + 0)`,
      ),
    };
  }

  dayDone(day: string): boolean {
    return this.stmt.dayDone.get(day) !== undefined;
  }

  /** Stores a day's reports with their destinations, due at `now`, and marks the day done. */
  saveDay(day: string, reports: readonly NewTlsReport[], now: number, giveUpAt: number): void {
    for (const r of reports) {
      if (r.day !== day) throw new TypeError(`report ${r.reportId} is for ${r.day}, not ${day}`);
      if (!this.stmt.insertReport.run({ ...r, now }).changes) continue;
      for (const destination of new Set(r.destinations)) this.stmt.insertSend.run(r.reportId, destination, now, giveUpAt);
    }
    this.stmt.markDay.run(day, now);
  }

  due(now: number, limit: number): DueTlsReport[] {
    return this.stmt.due.all({ now, limit }) as DueTlsReport[];
  }

  settle(settlements: readonly TlsReportSettlement[]): void {
    for (const s of settlements) {
      const key = { reportId: s.reportId, destination: s.destination, at: s.at };
      if (s.result === 'sent') this.stmt.sent.run(key);
      else if (s.result === 'retry') this.stmt.retry.run({ ...key, nextAt: s.nextAt, error: s.error.slice(0, ERROR_CHARS) });
      else this.stmt.failed.run({ ...key, error: s.error.slice(0, ERROR_CHARS) });
    }
  }

  list(opts: { domain?: string; limit?: number }): TlsReportSend[] {
    return this.stmt.list.all({ domain: opts.domain?.toLowerCase() ?? null, limit: opts.limit ?? 100 }) as TlsReportSend[];
  }
}
