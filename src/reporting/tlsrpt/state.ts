// What the store keeps of TLS reports (RFC 8460): the reports made, one per
// recipient domain and UTC day, and for each of its rua destinations whether it was
// sent, how often it was tried and when it is tried next. The report is kept as the
// JSON made once, so that every retry sends the same report (same report-id, §4.4).

/** A report made for one domain and day, with the destinations it goes to. */
export interface NewTlsReport {
  readonly reportId: string;
  /** The policy domain, lower case (an A-label). */
  readonly domain: string;
  /** The UTC day the report covers, "YYYY-MM-DD" (§4.1 date-range: 00:00 to 24:00 UTC). */
  readonly day: string;
  /** The report itself (report.ts), as it is sent. */
  readonly json: string;
  /** The rua URIs of the domain's TLSRPT record (discovery.ts), each sent to on its own. */
  readonly destinations: readonly string[];
}

export type TlsReportSendStatus = 'pending' | 'sent' | 'failed';

/** One destination of one report as the sender and `sealrelay tlsrpt status` see it. */
export interface TlsReportSend {
  readonly reportId: string;
  readonly domain: string;
  readonly day: string;
  readonly destination: string;
  readonly status: TlsReportSendStatus;
  readonly attempts: number;
  /** ms since the epoch: when it is tried next (pending), or was last tried. */
  readonly nextAt: number;
  /** ms since the epoch: a destination still failing then is given up (status failed). */
  readonly giveUpAt: number;
  readonly lastError: string | null;
  readonly sentAt: number | null;
}

/** A due destination with the report to send. */
export interface DueTlsReport extends TlsReportSend {
  readonly json: string;
}

/** What one try made of a destination: sent, tried again at nextAt, or given up. */
export type TlsReportSettlement =
  | { readonly reportId: string; readonly destination: string; readonly result: 'sent'; readonly at: number }
  | { readonly reportId: string; readonly destination: string; readonly result: 'retry'; readonly at: number; readonly nextAt: number; readonly error: string }
  | { readonly reportId: string; readonly destination: string; readonly result: 'failed'; readonly at: number; readonly error: string };
