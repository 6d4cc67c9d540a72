// Schema versions for the SQLite store, applied in order inside one transaction
// each and tracked with PRAGMA user_version, so an older data/ upgrades in place.
import type Database from 'better-sqlite3';

const MIGRATIONS: readonly string[] = [
  `CREATE TABLE messages (
     queue_id    TEXT PRIMARY KEY,
     sender      TEXT NOT NULL,
     message_id  TEXT,
     subject     TEXT,
     size        INTEGER NOT NULL,
     received_at INTEGER NOT NULL,
     client_ip   TEXT,
     auth_user   TEXT
   );
   -- Bodies apart from the envelope rows, so queue scans never page through message data.
   CREATE TABLE bodies (
     queue_id TEXT PRIMARY KEY REFERENCES messages(queue_id) ON DELETE CASCADE,
     body     BLOB NOT NULL
   );
   CREATE INDEX messages_received_at ON messages (received_at);
   CREATE TABLE recipients (
     queue_id        TEXT NOT NULL REFERENCES messages(queue_id) ON DELETE CASCADE,
     seq             INTEGER NOT NULL,
     recipient       TEXT NOT NULL,
     domain          TEXT NOT NULL,
     state           TEXT NOT NULL DEFAULT 'queued',
     attempts        INTEGER NOT NULL DEFAULT 0,
     next_attempt_at INTEGER NOT NULL,
     lease_owner     TEXT,
     lease_until     INTEGER NOT NULL DEFAULT 0,
     last_error      TEXT,
     PRIMARY KEY (queue_id, seq)
   );
   CREATE INDEX recipients_due ON recipients (state, next_attempt_at);
   CREATE TABLE records (
     id         INTEGER PRIMARY KEY,
     queue_id   TEXT NOT NULL,
     seq        INTEGER NOT NULL,
     message_id TEXT,
     attempt    INTEGER NOT NULL,
     at         INTEGER NOT NULL,
     sender     TEXT NOT NULL,
     recipient  TEXT NOT NULL,
     domain     TEXT NOT NULL,
     outcome    TEXT NOT NULL,
     method     TEXT NOT NULL,
     json       TEXT NOT NULL
   );
   CREATE INDEX records_queue_id ON records (queue_id);
   CREATE INDEX records_message_id ON records (message_id);
   CREATE INDEX records_recipient ON records (recipient COLLATE NOCASE);
   CREATE INDEX records_domain ON records (domain, at);
   CREATE INDEX records_at ON records (at);`,
  // Domain knowledge: what each recipient domain's MX offered, learned from attempts.
  `CREATE TABLE domains (
     domain             TEXT PRIMARY KEY,
     tls_known_since    INTEGER,
     last_tls_at        INTEGER,
     last_starttls_at   INTEGER,
     last_no_starttls_at INTEGER,
     last_attempt_at    INTEGER NOT NULL,
     attempts           INTEGER NOT NULL DEFAULT 0
   );`,
  // MTA-STS policies survive restarts (RFC 8461 §5.1: cache them for max_age).
  `CREATE TABLE mta_sts_policies (
     domain TEXT PRIMARY KEY,
     policy TEXT NOT NULL
   );`,
];

export function migrate(db: Database.Database): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > MIGRATIONS.length) {
    throw new Error(`database schema version ${current} is newer than this SealRelay (${MIGRATIONS.length}); refusing to touch it`);
  }
  MIGRATIONS.slice(current).forEach((sql, i) => {
    db.transaction(() => {
      db.exec(sql);
      db.pragma(`user_version = ${current + i + 1}`);
    })();
  });
}
