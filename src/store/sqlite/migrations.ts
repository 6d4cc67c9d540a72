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
  // Recipient keys (OpenPGP public keys, S/MIME certificates) and the addresses they
  // carry; the address table is what the policy looks keys up by. `addresses` keeps
  // the key's own order for display. Key lookups remember the last discovery (WKD)
  // per address, so a miss is not asked again on every message.
  `CREATE TABLE recipient_keys (
     fingerprint TEXT PRIMARY KEY,
     kind        TEXT NOT NULL,
     addresses   TEXT NOT NULL,
     data        TEXT NOT NULL,
     label       TEXT NOT NULL,
     created_at  INTEGER,
     expires_at  INTEGER,
     revoked     INTEGER NOT NULL,
     unusable    TEXT,
     source      TEXT NOT NULL,
     imported_at INTEGER NOT NULL
   );
   -- The primary key (address first) is the index lookups by address use.
   CREATE TABLE recipient_key_addresses (
     address     TEXT NOT NULL,
     fingerprint TEXT NOT NULL REFERENCES recipient_keys(fingerprint) ON DELETE CASCADE,
     PRIMARY KEY (address, fingerprint)
   );
   CREATE INDEX recipient_key_addresses_fingerprint ON recipient_key_addresses (fingerprint);
   CREATE TABLE key_lookups (
     address       TEXT PRIMARY KEY,
     looked_up_at  INTEGER NOT NULL,
     found         INTEGER NOT NULL,
     expires_at    INTEGER NOT NULL,
     error         TEXT
   );`,
  // The last probe of each domain and whether its handshake succeeded (NULL until a
  // probe ran), and running totals the store keeps across restarts: possible
  // duplicates counts recipients found mid-attempt after a crash (DESIGN: counted).
  `ALTER TABLE domains ADD COLUMN last_probe_at INTEGER;
   ALTER TABLE domains ADD COLUMN last_probe_tls_ok INTEGER;
   CREATE TABLE counters (
     name  TEXT PRIMARY KEY,
     value INTEGER NOT NULL
   );
   INSERT INTO counters (name, value) VALUES ('possible_duplicates', 0);`,
  // Whether the last probe's MX offered STARTTLS, so "no TLS" can say which: not
  // offered, or offered and failed. Earlier probes are read back from the
  // STARTTLS times the probe stamped (NULL where that is no longer telling).
  `ALTER TABLE domains ADD COLUMN last_probe_starttls INTEGER;
   UPDATE domains SET last_probe_starttls = CASE
     WHEN last_probe_at IS NULL THEN NULL
     WHEN last_probe_tls_ok = 1 THEN 1
     WHEN last_no_starttls_at = last_probe_at THEN 0
     WHEN last_starttls_at = last_probe_at THEN 1
     ELSE NULL END;`,
  // Operator actions (queue delete/hold/release/flush) leave a record in the log beside
  // the attempts; `kind` tells them apart, so what reads attempts never counts one.
  `ALTER TABLE records ADD COLUMN kind TEXT NOT NULL DEFAULT 'attempt';`,
  // RFC 3461 DSN parameters given at submission, for the bounces the relay makes:
  // ENVID per message, NOTIFY and ORCPT per recipient (NULL: not given).
  `ALTER TABLE messages ADD COLUMN dsn_envid TEXT;
   ALTER TABLE recipients ADD COLUMN dsn_notify TEXT;
   ALTER TABLE recipients ADD COLUMN dsn_orcpt TEXT;`,
  // Bodies in parts: a large message is written part by part while it arrives, so
  // ingress never holds it whole, and part 0 (its head, our Received on top) with
  // the envelope at the end. Parts come before their message row, so they cannot
  // reference it: a trigger deletes them with their message instead of a cascade,
  // and parts of a message never enqueued are dropped at the next start.
  `CREATE TABLE body_parts (
     queue_id TEXT NOT NULL,
     part     INTEGER NOT NULL,
     data     BLOB NOT NULL,
     PRIMARY KEY (queue_id, part)
   );
   INSERT INTO body_parts (queue_id, part, data) SELECT queue_id, 0, body FROM bodies;
   DROP TABLE bodies;
   CREATE TRIGGER messages_body_parts AFTER DELETE ON messages
   BEGIN
     DELETE FROM body_parts WHERE queue_id = old.queue_id;
   END;`,
  // Portal items (portal/vault.ts): metadata and the wrapped data key in one row,
  // the ciphertext in a table of its own (scans never page through it; erasing an
  // item deletes its row there). An item outlives its queued message, which it does
  // not reference. Only the token's hash is kept; the code columns hold the pending
  // one-time code's hash, expiry and tries, and the lock after too many wrong ones.
  `CREATE TABLE portal_items (
     id              TEXT PRIMARY KEY,
     queue_id        TEXT NOT NULL,
     seq             INTEGER NOT NULL,
     message_id      TEXT,
     sender          TEXT NOT NULL,
     recipient       TEXT NOT NULL,
     domain          TEXT NOT NULL,
     created_at      INTEGER NOT NULL,
     expires_at      INTEGER NOT NULL,
     recalled_at     INTEGER,
     erased_at       INTEGER,
     size            INTEGER NOT NULL,
     key_in_link     INTEGER NOT NULL,
     key_id          TEXT,
     wrap_nonce      BLOB,
     wrapped_key     BLOB,
     token_hash      BLOB NOT NULL UNIQUE,
     code_hash       BLOB,
     code_expires_at INTEGER,
     code_tries_left INTEGER,
     locked_until    INTEGER
   );
   CREATE INDEX portal_items_queue_id ON portal_items (queue_id);
   CREATE INDEX portal_items_message_id ON portal_items (message_id);
   CREATE INDEX portal_items_created_at ON portal_items (created_at);
   CREATE INDEX portal_items_expiry ON portal_items (expires_at) WHERE erased_at IS NULL;
   CREATE TABLE portal_content (
     item_id TEXT PRIMARY KEY REFERENCES portal_items(id) ON DELETE CASCADE,
     nonce   BLOB NOT NULL,
     content BLOB NOT NULL
   );`,
  // Mail the relay makes for the portal (notification, code, reply), which policy decides
  // apart (store.ts MessageOrigin); and an item's passphrase, hashed (scrypt, salt first).
  `ALTER TABLE messages ADD COLUMN origin TEXT;
   ALTER TABLE portal_items ADD COLUMN passphrase_hash BLOB;`,
  // Events (events/event.ts): the outbox, written in the transaction of each fact.
  // The id is time-ordered and is the reading order (the table is clustered on it);
  // the indexes serve reports by type and time, by time, and a message's timeline.
  // Facts from before this version have no events: their records still tell them.
  `CREATE TABLE events (
     id        TEXT PRIMARY KEY,
     queue_id  TEXT NOT NULL,
     seq       INTEGER NOT NULL,
     at        INTEGER NOT NULL,
     type      TEXT NOT NULL,
     sender    TEXT NOT NULL,
     recipient TEXT NOT NULL,
     domain    TEXT NOT NULL,
     method    TEXT,
     campaign  TEXT
   ) WITHOUT ROWID;
   CREATE INDEX events_type_at ON events (type, at);
   CREATE INDEX events_at ON events (at);
   CREATE INDEX events_queue_id ON events (queue_id, seq);`,
  // What reports split by besides the envelope (events/event.ts): the campaign (a
  // header, stripped before delivery, or the API's field), the custom field (a header
  // named in config) and the subject; and, for opens and clicks, whether a machine
  // (an image proxy, a link scanner) made them; for an attempt, the TLS version it
  // negotiated. Every later event of a message copies
  // the first three from its `queued` event, so reports need no join.
  `ALTER TABLE messages ADD COLUMN campaign TEXT;
   ALTER TABLE messages ADD COLUMN custom TEXT;
   ALTER TABLE events ADD COLUMN subject TEXT;
   ALTER TABLE events ADD COLUMN custom TEXT;
   ALTER TABLE events ADD COLUMN automated INTEGER NOT NULL DEFAULT 0;
   ALTER TABLE events ADD COLUMN tls TEXT;`,
  // v14: report counts (src/reporting/).
  // The report counts (store/sqlite/report-table.ts): per split field, grain (15, 60
  // or 1440 minutes), slot (ms since the epoch / grain) and value, each recipient
  // counted once per figure at its first event of that kind; kept from now on by
  // every event write. The events already there are counted here the same way, so
  // reports cover the time before the upgrade too.
  `CREATE TABLE report_counts (
     dimension          TEXT NOT NULL,
     grain              INTEGER NOT NULL,
     slot               INTEGER NOT NULL,
     value              TEXT NOT NULL,
     queued             INTEGER NOT NULL DEFAULT 0,
     delivered          INTEGER NOT NULL DEFAULT 0,
     deferred           INTEGER NOT NULL DEFAULT 0,
     bounced            INTEGER NOT NULL DEFAULT 0,
     dropped            INTEGER NOT NULL DEFAULT 0,
     secured            INTEGER NOT NULL DEFAULT 0,
     tls13              INTEGER NOT NULL DEFAULT 0,
     tls12              INTEGER NOT NULL DEFAULT 0,
     tls_other          INTEGER NOT NULL DEFAULT 0,
     pgp                INTEGER NOT NULL DEFAULT 0,
     smime              INTEGER NOT NULL DEFAULT 0,
     portal             INTEGER NOT NULL DEFAULT 0,
     plaintext          INTEGER NOT NULL DEFAULT 0,
     opened             INTEGER NOT NULL DEFAULT 0,
     opened_human       INTEGER NOT NULL DEFAULT 0,
     clicked            INTEGER NOT NULL DEFAULT 0,
     clicked_human      INTEGER NOT NULL DEFAULT 0,
     unsubscribed       INTEGER NOT NULL DEFAULT 0,
     unsubscribed_human INTEGER NOT NULL DEFAULT 0,
     PRIMARY KEY (dimension, grain, slot, value)
   ) WITHOUT ROWID;
   INSERT INTO report_counts (dimension, grain, slot, value, queued, delivered, deferred, bounced, dropped, secured, tls13, tls12, tls_other, pgp, smime, portal, plaintext, opened, opened_human, clicked, clicked_human, unsubscribed, unsubscribed_human)
   WITH ranked AS MATERIALIZED (
     SELECT at, type, coalesce(method, '') AS method, tls, domain, sender,
            coalesce(subject, '') AS subject, coalesce(campaign, '') AS campaign, coalesce(custom, '') AS custom,
            row_number() OVER (PARTITION BY queue_id, seq, type ORDER BY id) = 1 AS first,
            automated = 0 AND row_number() OVER (PARTITION BY queue_id, seq, type, automated ORDER BY id) = 1 AS first_human
     FROM events
     WHERE type IN ('queued', 'delivered', 'portal-notified', 'deferred', 'bounced', 'dropped', 'secured', 'opened', 'clicked', 'unsubscribed')
   ),
   counted AS MATERIALIZED (
     SELECT at, domain, sender, subject, campaign, custom,
            first AND type = 'queued' AS queued,
            first AND type IN ('delivered', 'portal-notified') AS delivered,
            first AND type = 'deferred' AS deferred,
            first AND type = 'bounced' AS bounced,
            first AND type = 'dropped' AS dropped,
            first AND type = 'secured' AS secured,
            first AND type IN ('delivered', 'portal-notified') AND method = 'tls' AND tls IS 'TLSv1.3' AS tls13,
            first AND type IN ('delivered', 'portal-notified') AND method = 'tls' AND tls IS 'TLSv1.2' AS tls12,
            first AND type IN ('delivered', 'portal-notified') AND method = 'tls' AND coalesce(tls, '') NOT IN ('TLSv1.3', 'TLSv1.2') AS tls_other,
            first AND type IN ('delivered', 'portal-notified') AND method IN ('pgp', 'pgp+tls') AS pgp,
            first AND type IN ('delivered', 'portal-notified') AND method IN ('smime', 'smime+tls') AS smime,
            first AND type IN ('delivered', 'portal-notified') AND method = 'portal' AS portal,
            first AND type IN ('delivered', 'portal-notified') AND method NOT IN ('tls', 'pgp', 'pgp+tls', 'smime', 'smime+tls', 'portal') AS plaintext,
            first AND type = 'opened' AS opened,
            first_human AND type = 'opened' AS opened_human,
            first AND type = 'clicked' AS clicked,
            first_human AND type = 'clicked' AS clicked_human,
            first AND type = 'unsubscribed' AS unsubscribed,
            first_human AND type = 'unsubscribed' AS unsubscribed_human
     FROM ranked
   )
   SELECT dimension, grain, at / (grain * 60000) AS slot, value, sum(queued), sum(delivered), sum(deferred), sum(bounced), sum(dropped), sum(secured), sum(tls13), sum(tls12), sum(tls_other), sum(pgp), sum(smime), sum(portal), sum(plaintext), sum(opened), sum(opened_human), sum(clicked), sum(clicked_human), sum(unsubscribed), sum(unsubscribed_human)
   FROM (SELECT 'domain' AS dimension, domain AS value, * FROM counted
         UNION ALL SELECT 'sender' AS dimension, sender AS value, * FROM counted
         UNION ALL SELECT 'subject' AS dimension, subject AS value, * FROM counted
         UNION ALL SELECT 'campaign' AS dimension, campaign AS value, * FROM counted
         UNION ALL SELECT 'custom' AS dimension, custom AS value, * FROM counted)
   CROSS JOIN (SELECT 15 AS grain UNION ALL SELECT 60 UNION ALL SELECT 1440)
   GROUP BY dimension, grain, slot, value
   HAVING sum(queued) + sum(delivered) + sum(deferred) + sum(bounced) + sum(dropped) + sum(secured) + sum(tls13) + sum(tls12) + sum(tls_other) + sum(pgp) + sum(smime) + sum(portal) + sum(plaintext) + sum(opened) + sum(opened_human) + sum(clicked) + sum(clicked_human) + sum(unsubscribed) + sum(unsubscribed_human) > 0;`,
  // v15: API tokens and idempotency keys (src/http/api/).
  // A token is found by its public id; only the SHA-256 of its secret is kept. Revoked
  // tokens stay (who could send, and until when); a name is unique among live ones.
  // An Idempotency-Key is kept per token with the hash of its request and what that
  // request queued, written in the enqueue's transaction; pruned after api.idempotency_hours.
  `CREATE TABLE api_tokens (
     id           TEXT PRIMARY KEY,
     name         TEXT NOT NULL,
     secret_hash  BLOB NOT NULL,
     scopes       TEXT NOT NULL,
     created_at   INTEGER NOT NULL,
     expires_at   INTEGER,
     revoked_at   INTEGER,
     last_used_at INTEGER
   );
   CREATE UNIQUE INDEX api_tokens_live_name ON api_tokens (name) WHERE revoked_at IS NULL;
   CREATE TABLE api_idempotency_keys (
     token_id     TEXT NOT NULL,
     key          TEXT NOT NULL,
     request_hash BLOB NOT NULL,
     queue_id     TEXT NOT NULL,
     message_id   TEXT,
     created_at   INTEGER NOT NULL,
     PRIMARY KEY (token_id, key)
   ) WITHOUT ROWID;
   CREATE INDEX api_idempotency_keys_created_at ON api_idempotency_keys (created_at);`,
  // v16: webhooks (src/events/webhooks/).
  // Per endpoint a cursor into the events and running totals, and a delivery per event
  // copied for it (events/webhooks/outbox.ts), with the body it is sent (and signed) as.
  `CREATE TABLE webhook_endpoints (
     name              TEXT PRIMARY KEY,
     after_id          TEXT NOT NULL,
     delivered         INTEGER NOT NULL DEFAULT 0,
     failed_attempts   INTEGER NOT NULL DEFAULT 0,
     gave_up           INTEGER NOT NULL DEFAULT 0,
     last_delivered_at INTEGER,
     last_failure_at   INTEGER,
     last_status       INTEGER,
     last_error        TEXT
   );
   CREATE TABLE webhook_deliveries (
     endpoint     TEXT NOT NULL,
     event_id     TEXT NOT NULL,
     queue_id     TEXT NOT NULL,
     type         TEXT NOT NULL,
     body         TEXT NOT NULL,
     state        TEXT NOT NULL DEFAULT 'pending',
     attempts     INTEGER NOT NULL DEFAULT 0,
     queued_at    INTEGER NOT NULL,
     next_at      INTEGER NOT NULL,
     lease_until  INTEGER NOT NULL DEFAULT 0,
     last_at      INTEGER,
     last_status  INTEGER,
     last_error   TEXT,
     delivered_at INTEGER,
     PRIMARY KEY (endpoint, event_id)
   ) WITHOUT ROWID;
   CREATE INDEX webhook_deliveries_due ON webhook_deliveries (endpoint, next_at) WHERE state = 'pending';
   CREATE INDEX webhook_deliveries_message ON webhook_deliveries (endpoint, queue_id, event_id) WHERE state = 'pending';
   CREATE INDEX webhook_deliveries_settled ON webhook_deliveries (endpoint, state, last_at) WHERE state != 'pending';`,
  // v17: the audit trail (src/events/audit/).
  // Who read or changed what, hash-chained (events/audit/entry.ts; audit-table.ts).
  // Append-only: the triggers refuse any update or delete.
  `CREATE TABLE audit_trail (
     seq        INTEGER PRIMARY KEY,
     at         INTEGER NOT NULL,
     actor_kind TEXT NOT NULL,
     actor_name TEXT NOT NULL,
     ip         TEXT,
     action     TEXT NOT NULL,
     target     TEXT,
     detail     TEXT,
     prev       TEXT NOT NULL,
     hash       TEXT NOT NULL
   );
   CREATE INDEX audit_trail_at ON audit_trail (at);
   CREATE TRIGGER audit_trail_no_update BEFORE UPDATE ON audit_trail BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
   CREATE TRIGGER audit_trail_no_delete BEFORE DELETE ON audit_trail BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;`,
  // v18: tracking, unsubscribes and suppressions (src/reporting/tracking/).
  // Who gets no more mail from a sender domain (reporting/tracking/suppression.ts):
  // one row per (sender domain, address), both normalised; an unsubscribe names the
  // message whose link made it. Opens, clicks and unsubscribes themselves are events.
  `CREATE TABLE suppressions (
     sender_domain TEXT NOT NULL,
     recipient     TEXT NOT NULL,
     source        TEXT NOT NULL,
     created_at    INTEGER NOT NULL,
     queue_id      TEXT,
     seq           INTEGER,
     PRIMARY KEY (sender_domain, recipient)
   ) WITHOUT ROWID;
   CREATE INDEX suppressions_recipient ON suppressions (recipient);`,
  // Queued bodies encrypted at rest (store/sqlite/body-cipher.ts): the key a part is
  // sealed with and its nonce; null for a part stored in the clear (before a key was set).
  `ALTER TABLE body_parts ADD COLUMN key_id TEXT;
   ALTER TABLE body_parts ADD COLUMN nonce BLOB;`,
  // v20: the report counts are kept behind the events, not in each event's transaction
  // (report-table.ts): how far they have counted. The counts up to here were kept
  // with every event written, so they already hold all the events in the table.
  `CREATE TABLE report_progress (
     only       INTEGER PRIMARY KEY CHECK (only = 1),
     through_id TEXT
   );
   INSERT INTO report_progress (only, through_id) SELECT 1, max(id) FROM events;`,
  // v21: REQUIRETLS (RFC 8689): the sender demanded, on MAIL FROM, verified TLS to a
  // next hop that passes the demand on (delivery/require-tls.ts). 0 for every message
  // queued before, and for the sendmail and API ways in, which have no such parameter.
  `ALTER TABLE messages ADD COLUMN require_tls INTEGER NOT NULL DEFAULT 0;`,
  // v22: TLS reports (RFC 8460) the relay made and their sending (reporting/tlsrpt/):
  // one report per recipient domain and UTC day, kept as the JSON sent so that every
  // retry sends the same report-id; one row per rua destination with its own retry
  // state; and the days whose reports were made (each day's records are read once).
  `CREATE TABLE tlsrpt_reports (
     report_id  TEXT PRIMARY KEY,
     domain     TEXT NOT NULL,
     day        TEXT NOT NULL,
     created_at INTEGER NOT NULL,
     json       TEXT NOT NULL,
     UNIQUE (domain, day)
   );
   CREATE TABLE tlsrpt_sends (
     report_id   TEXT NOT NULL REFERENCES tlsrpt_reports (report_id) ON DELETE CASCADE,
     destination TEXT NOT NULL,
     status      TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'failed')),
     attempts    INTEGER NOT NULL DEFAULT 0,
     next_at     INTEGER NOT NULL,
     give_up_at  INTEGER NOT NULL,
     last_error  TEXT,
     sent_at     INTEGER,
     PRIMARY KEY (report_id, destination)
   ) WITHOUT ROWID;
   CREATE INDEX tlsrpt_sends_due ON tlsrpt_sends (status, next_at);
   CREATE TABLE tlsrpt_days (
     day     TEXT PRIMARY KEY,
     done_at INTEGER NOT NULL
   ) WITHOUT ROWID;`,
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
