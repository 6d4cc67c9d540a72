// What the store hands reports: counts of recipients per split value and time
// bucket, read from its rollup of the events (store/sqlite/report-table.ts). The
// time zone arithmetic stays in reporting/report.ts: the store is told, as plain
// numbers, which stretches of time (pieces) make up each bucket.

/** What a report is split by: one row per value of this field of the events. */
export const REPORT_SPLITS = ['none', 'domain', 'sender', 'subject', 'campaign', 'custom'] as const;
export type ReportSplit = (typeof REPORT_SPLITS)[number];

export const REPORT_BUCKETS = ['none', 'hour', 'day'] as const;
export type ReportBucket = (typeof REPORT_BUCKETS)[number];

/** The finest grain of the counts, a quarter hour: every time zone's hours and days begin on one. */
export const SLOT_MS = 15 * 60 * 1000;

/**
 * Recipients, each counted at most once per figure: at its first event of that kind
 * (reporting/report.ts explains). `tls13` … `plaintext` split `delivered` by method.
 */
export interface ReportCounts {
  readonly queued: number;
  /** Delivered by any method, the portal's notification included. */
  readonly delivered: number;
  readonly deferred: number;
  readonly bounced: number;
  readonly dropped: number;
  /** Delivered by any method but plaintext. */
  readonly secured: number;
  readonly tls13: number;
  readonly tls12: number;
  /** TLS of another version than 1.2 or 1.3 (an older one a lowered floor allowed), or of none recorded. */
  readonly tlsOther: number;
  /** PGP/MIME, with or without TLS on top. */
  readonly pgp: number;
  /** S/MIME, with or without TLS on top. */
  readonly smime: number;
  readonly portal: number;
  readonly plaintext: number;
  readonly opened: number;
  readonly clicked: number;
  readonly unsubscribed: number;
}

export const COUNT_NAMES = [
  'queued', 'delivered', 'deferred', 'bounced', 'dropped', 'secured',
  'tls13', 'tls12', 'tlsOther', 'pgp', 'smime', 'portal', 'plaintext',
  'opened', 'clicked', 'unsubscribed',
] as const satisfies readonly (keyof ReportCounts)[];

/**
 * The grains the store keeps counts at, in minutes: quarter hours (every zone's hours
 * and days begin on one), hours and UTC days. A report reads each stretch of time at
 * the coarsest grain that fits it, so a month split by domain reads some thirty rows
 * a domain, not three thousand.
 */
export const GRAINS = [15, 60, 1440] as const;
export type Grain = (typeof GRAINS)[number];

/** Slots [fromSlot, toSlot) of one grain (slot = ms / grain), all in bucket `bucket`. */
export interface ReportPiece {
  readonly grain: Grain;
  readonly fromSlot: number;
  readonly toSlot: number;
  /**
   * hour: the UTC ms the local hour starts; day: the local day as days since
   * 1970-01-01 (local calendar); none: 0.
   */
  readonly bucket: number;
}

/** What `Store.reportCounts` is asked: the counts of these pieces of time, summed per bucket and split value. */
export interface ReportCountsQuery {
  readonly split: ReportSplit;
  /** Pieces that do not overlap (reporting/report.ts cuts the window into them). */
  readonly pieces: readonly ReportPiece[];
  /** Count opens, clicks and unsubscribes made by machines too. */
  readonly includeAutomated: boolean;
  /**
   * Split values ('' for none) to count one by one; all others are summed per
   * bucket into one row marked `other`. Absent: every value has its row.
   */
  readonly keep?: readonly string[];
}

/** One row of the store's answer. */
export interface ReportCountsRow {
  /** The split value; null: none (no split, or the events had none), or the values not kept. */
  readonly key: string | null;
  /** The bucket of its pieces (ReportPiece.bucket). */
  readonly bucket: number;
  readonly counts: ReportCounts;
  /** The sum of the split values not in ReportCountsQuery.keep. */
  readonly other?: true;
}
