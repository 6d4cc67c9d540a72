// The configuration schema: the single source of truth for validation, defaults
// and the `Config` type. Every object is strict, so an unknown key is an error
// (a typo in a security setting must never be silently ignored).
import { z } from 'zod';
// Custom DLP patterns are compiled once here so a bad one is a config error with its line.
import { buildDetectors } from '../policy/dlp/detectors.ts';
import { checkDetectorRegex } from '../policy/dlp/safe-regex.ts';
// Every regular expression an operator writes runs on RE2 (linear time); this is its one check.
import { compileUserRegex } from '../policy/user-regex.ts';
import { INCOMPLETE_SCAN } from '../policy/dlp/for-config.ts';
import { parseDnsServer } from '../net/dns-server.ts';
import { webhooksSchema } from './webhooks.ts';

export const MODES = ['none', 'opportunistic', 'forced', 'tls-exclusive', 'pgp', 'smime', 'portal'] as const;
/** crypto.encryption_budget_bytes unless set: 64 MiB of sealed copies in work at once. */
export const DEFAULT_ENCRYPTION_BUDGET_BYTES = 64 * 1024 * 1024;

/**
 * `dane-only`: DANE or defer. `auto`: DANE where the MX publishes usable TLSA records,
 * else nothing more than `none` (policy/verification.ts); without delivery.dns.dnssec
 * it is `none` exactly.
 */
export const VERIFICATIONS = ['none', 'ca', 'mta-sts', 'dane', 'dane-only', 'auto'] as const;
/** TLS versions a floor may name. SSLv2/v3, TLSv1 and TLSv1.1 are below any floor we allow. */
export const TLS_VERSIONS = ['TLSv1.2', 'TLSv1.3'] as const;

const hostPort = z
  .string()
  .regex(/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, 'expected "host:port" (IPv6 as "[::1]:25")');

/**
 * A web listener (portal.listen, api.listen): "host:port", "[v6]:port", or a bare port
 * (then 127.0.0.1: private unless an address is named); null: no listener.
 */
const webListen = z
  .union([z.number().int().min(0).max(65535), hostPort])
  .nullable()
  .default(null)
  .transform((v) => {
    if (v === null) return null;
    if (typeof v === 'number') return { host: '127.0.0.1', port: v };
    const at = v.lastIndexOf(':');
    return { host: v.slice(0, at).replace(/^\[(.*)\]$/, '$1'), port: Number(v.slice(at + 1)) };
  })
  .refine((v) => v === null || v.port <= 65535, 'a port is 0-65535');

/** Where browsers reach a web listener: an https:// origin, optionally with a path; no query or fragment. */
const publicUrl = z
  .string()
  .refine((v) => URL.canParse(v) && new URL(v).protocol === 'https:' && !new URL(v).search && !new URL(v).hash, 'expected an https:// address without ?query or #fragment, e.g. "https://secure.clinic.example"')
  .nullable()
  .default(null);

/** An RFC 5322 field name: printable US-ASCII without the colon. */
const headerName = z.string().regex(/^[\x21-\x39\x3b-\x7e]{1,76}$/, 'expected a header field name, e.g. "X-Campaign-ID"');
const cidr = z.string().refine(isCidr, 'expected an address or CIDR range, e.g. "127.0.0.1/32" or "::1/128"');

const listener = z
  .object({
    /** Address to bind. */
    host: z.string().default('127.0.0.1'),
    /** TCP port; 0 picks a free one (tests). */
    port: z.number().int().min(0).max(65535),
    /**
     * starttls: STARTTLS offered, plaintext allowed where policy permits;
     * required: STARTTLS must complete before AUTH or MAIL (RFC 3207 §4 "may require");
     * implicit: TLS from the first byte (RFC 8314 submissions port 465).
     */
    tls: z.enum(['starttls', 'required', 'implicit']).default('starttls'),
    /**
     * Milliseconds the 220 greeting is held; a client that talks before it is refused
     * (421, the early-talker check of port 25 servers). 0 greets at once: apps that
     * open a connection per message wait for nothing (ingress/greeting.ts).
     */
    greeting_delay_ms: z.number().int().min(0).max(60_000).default(0),
    /**
     * Look up the client's name (PTR, forward-confirmed) for the Received header, like
     * Postfix's smtpd_peername_lookup. It runs beside the session and never holds the
     * greeting; MAIL FROM waits for what is left of it, at most reverse_dns_timeout_ms.
     */
    reverse_dns: z.boolean().default(false),
    reverse_dns_timeout_ms: z.number().int().positive().max(60_000).default(1500),
  })
  .strict();

const floorSchema = z
  .object({
    min_version: z.enum(TLS_VERSIONS).default('TLSv1.2'),
    min_cipher_bits: z.number().int().min(128).max(256).default(128),
    /** PEM bundle of trusted CAs for `verification: ca`; system store when unset. */
    ca_file: z.string().nullable().default(null),
  })
  .strict();

const deliverableMode = z.enum(MODES);

/** A resolver address; a name fails here rather than at the first lookup. */
const dnsServer = z.string().superRefine((spec, ctx) => {
  try {
    parseDnsServer(spec);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message });
  }
});

// `dane`/`dane-only` need DNSSEC-validated answers: refused at load (configSchema below)
// unless delivery.dns.dnssec declares the resolvers validating.
const verification = z.enum(VERIFICATIONS);

/** What a fallback chain may try, in order: an encryption, TLS at the floor (`forced`), the portal. */
export const FALLBACK_STEPS = ['pgp', 'smime', 'forced', 'portal'] as const;

/**
 * Steps tried, in order, when `forced` finds no acceptable TLS or a `pgp`/`smime`
 * recipient has no usable key. Unset: forced falls back to [pgp, smime, portal], the others to nothing.
 */
const fallbackSteps = z
  .array(z.enum(FALLBACK_STEPS))
  .refine((steps) => new Set(steps).size === steps.length, 'a step appears twice')
  .optional();

/**
 * How the portal keeps an item made under this entry (mode portal, or a chain that
 * reaches its portal step). Unset keys take portal.* defaults.
 */
const portalItemSettings = z
  .object({
    /** Days the recipient can read it; the ciphertext is deleted after. */
    expiry_days: z.number().int().min(1).max(3650).optional(),
    /** Part of the item's key only in the link's #fragment: the server alone cannot open it. */
    key_in_link: z.boolean().optional(),
    /** The notification may name the subject (it never does unless allowed). */
    show_subject: z.boolean().optional(),
    /** A passphrase the sender gives the recipient another way, asked after the code. */
    passphrase: z.string().min(8, 'a portal passphrase needs at least 8 characters').max(200).optional(),
  })
  .strict();

/** tls-exclusive drops instead of falling back; a chain there would be a contradiction. */
const noChainOnExclusive = (e: { mode: string; fallback?: readonly string[] | undefined }) => !(e.mode === 'tls-exclusive' && e.fallback?.length);
const EXCLUSIVE_CHAIN = 'tls-exclusive drops the message when TLS fails: it takes no fallback';

const policyEntry = z
  .object({
    mode: deliverableMode,
    /**
     * Default: `ca` for forced/tls-exclusive would refuse most of the internet, so `auto`
     * unless named: DANE where published (with delivery.dns.dnssec), else `none`.
     */
    verification: verification.default('auto'),
    fallback: fallbackSteps,
    portal: portalItemSettings.optional(),
  })
  .strict()
  .refine(noChainOnExclusive, { message: EXCLUSIVE_CHAIN, path: ['fallback'] });

const stringList = z.union([z.string(), z.array(z.string())]).transform((v) => (Array.isArray(v) ? v : [v]));

const ruleMatch = z
  .object({
    /** Recipient domains: exact ("example.com"), or "*.example.com" for its subdomains (not itself). */
    recipient_domain: stringList.optional(),
    /** A file with one recipient domain (or *.wildcard) per line; # starts a comment. */
    recipient_domains_file: z.string().optional(),
    /** Recipient addresses; "*" matches any run of characters ("*@partner.example"). */
    recipient: stringList.optional(),
    sender: stringList.optional(),
    sender_domain: stringList.optional(),
    /** Authenticated submission user (ingress AUTH name). */
    auth_user: stringList.optional(),
    /** A tag in the subject, case-insensitive (e.g. "[phi]"). */
    subject_tag: z.string().min(1).optional(),
    /** A header by name, with an exact value or a regular expression (RE2 syntax) (or neither: present). */
    header: z
      .object({ name: z.string().min(1), value: z.string().optional(), regex: z.string().optional() })
      .strict()
      .refine((h) => !(h.value !== undefined && h.regex !== undefined), 'give value or regex, not both')
      .superRefine((h, ctx) => {
        const why = h.regex === undefined ? null : regexProblem(() => compileUserRegex(h.regex as string));
        if (why) ctx.addIssue({ code: 'custom', path: ['regex'], message: why });
      })
      .optional(),
    /** DLP detectors of which at least one fired (ids from dlp.detectors / dlp.custom). */
    dlp: stringList.optional(),
  })
  .strict()
  .refine((m) => Object.keys(m).length > 0, 'a rule needs at least one condition (use policies.default for everything)');

const floorOverride = z
  .object({ min_version: z.enum(TLS_VERSIONS).optional(), min_cipher_bits: z.number().int().min(128).max(256).optional() })
  .strict();

const rule = z
  .object({
    name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, 'rule names are letters, digits, . _ -'),
    /** Every condition given must hold (all-of). */
    match: ruleMatch,
    mode: deliverableMode,
    verification: verification.optional(),
    floor: floorOverride.optional(),
    fallback: fallbackSteps,
    portal: portalItemSettings.optional(),
    /** Opt-in tracking for this rule's recipients (src/reporting/tracking/); needs the tracking key and a public listener. */
    tracking: z.object({ opens: z.boolean().default(false), clicks: z.boolean().default(false), unsubscribe: z.boolean().default(false) }).strict().optional(),
    /** Receipts, resets, results: sent even to recipients who unsubscribed from the sender's domain. */
    transactional: z.boolean().optional(),
    /**
     * An authenticated sender's `TLS-Required: No` header (RFC 8689 §3, §4.2.2) is honoured for this
     * rule's recipients: TLS policy (mode's TLS demand, MTA-STS, DANE) is set aside for that
     * message. Default false: the header is ignored, and the record says so.
     */
    allow_tls_required_no: z.boolean().default(false),
  })
  .strict()
  .refine(noChainOnExclusive, { message: EXCLUSIVE_CHAIN, path: ['fallback'] });

const escalationSchema = z
  .object({
    /** A subject tag that raises the mode, e.g. "[secure]"; removed from the delivered subject. */
    subject_tag: z
      .object({ tag: z.string().min(1), mode: deliverableMode, strip: z.boolean().default(true) })
      .strict()
      .nullable()
      .default(null),
    /** Header through which an authenticated submitter asks for a mode (never lowers it). */
    header: z
      .object({ name: z.string().min(1).default('X-SealRelay-Mode') })
      .strict()
      .nullable()
      .default(null),
  })
  .strict();

/**
 * A portal master key: 32 random bytes (base64 text, `sealrelay portal keygen`) read
 * from a file or from an environment variable, never written here (portal/master-keys.ts).
 */
const portalMasterKey = z
  .object({
    /** Named in every item it wraps: never reuse an id for another key. */
    id: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'key ids are 1-64 letters, digits, . _ - (starting with a letter or digit)'),
    file: z.string().min(1).optional(),
    env: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'expected an environment variable name, e.g. SEALRELAY_PORTAL_KEY').optional(),
  })
  .strict()
  .refine((k) => (k.file === undefined) !== (k.env === undefined), 'give the key as file or env (one of them)');

const retrySchema = z
  .object({
    /** First retry after this many seconds (Postfix minimal_backoff_time: 300s). */
    first_seconds: z.number().positive().default(300),
    /** Backoff never exceeds this (Postfix maximal_backoff_time: 4000s). */
    max_seconds: z.number().positive().default(3600),
    factor: z.number().min(1).default(2),
    /** Give up and bounce after this long in the queue (Postfix maximal_queue_lifetime: 5d). */
    lifetime_seconds: z.number().positive().default(5 * 24 * 3600),
  })
  .strict();

/**
 * An age in days past which retention prunes, or null: keep. 400 days by default: a year
 * of evidence for the yearly review and audit, with a month to spare (README, Retention).
 */
const retentionDays = z.number().int().min(1).max(36500).nullable().default(400);

export const configSchema = z
  .object({
    server: z
      .object({
        /** Our name: SMTP banner, EHLO name on delivery, Received headers, bounce sender. */
        hostname: z.string().min(1).default('sealrelay.localhost'),
      })
      .strict()
      .prefault({}),
    store: z
      .object({
        driver: z.enum(['sqlite']).default('sqlite'),
        /** SQLite database file (WAL mode). Relative paths in a config file are relative to its directory (load.ts). */
        path: z.string().default('data/sealrelay.db'),
        /**
         * Queued message bodies encrypted at rest (AES-256-GCM, store/sqlite/body-cipher.ts):
         * on as soon as a key is named. Keys as the portal's: 32 random bytes in base64, by file
         * (mode 0600) or environment variable, never in the YAML; parts under an older key stay
         * readable while it is listed.
         */
        encryption: z
          .object({
            keys: z.array(portalMasterKey).default([]),
            /** The id of the key new bodies are encrypted with: named, never guessed. */
            current_key: z.string().nullable().default(null),
          })
          .strict()
          .superRefine((e, ctx) => {
            const ids = new Set<string>();
            e.keys.forEach((k, i) => {
              if (ids.has(k.id)) ctx.addIssue({ code: 'custom', path: ['keys', i, 'id'], message: `duplicate key id ${k.id}` });
              ids.add(k.id);
            });
            if (e.current_key === null && ids.size) ctx.addIssue({ code: 'custom', path: ['current_key'], message: 'name the key new bodies are encrypted with (one of the keys ids)' });
            if (e.current_key !== null && !ids.has(e.current_key)) ctx.addIssue({ code: 'custom', path: ['current_key'], message: `no key with id ${e.current_key} in store.encryption.keys` });
          })
          .prefault({}),
      })
      .strict()
      .prefault({}),
    /**
     * How long the store keeps what is left of finished messages (store/retention.ts).
     * A message's body goes with its last recipient's final outcome, always; these
     * ages are for the evidence of how it travelled. null keeps that kind for ever.
     */
    retention: z
      .object({
        /** The delivery log (attempt records, operator actions, portal events) and erased portal items' metadata, in days. */
        records_days: retentionDays,
        /** Events (what webhooks, metrics and the dashboard read; reports read their own counts), in days. */
        events_days: retentionDays,
        /** How often the running relay prunes, in seconds (and once at start). */
        interval_seconds: z.number().int().min(60).max(7 * 86400).default(3600),
      })
      .strict()
      .prefault({}),
    ingress: z
      .object({
        listeners: z.record(z.string().regex(/^[a-z][a-z0-9_]*$/, 'listener names are lower_snake_case'), listener),
        /** Server certificate and key (PEM). Generated as a self-signed dev pair when both are missing. */
        cert_file: z.string().default('certs/sealrelay-dev.crt'),
        key_file: z.string().default('certs/sealrelay-dev.key'),
        /** Submission accounts (scrypt hashes), managed with `sealrelay user add`; by default next to the config file. */
        users_file: z.string().default('users.yaml'),
        /** Clients in these networks may relay without AUTH. Everyone else must authenticate. */
        relay_networks: z.array(cidr).default(['127.0.0.1/32', '::1/128']),
        /** Clients in these networks may AUTH without TLS (AUTH is otherwise TLS-only). */
        auth_plaintext_networks: z.array(cidr).default([]),
        /** Clients in these networks must use TLS before MAIL FROM, whatever the listener says. */
        require_tls_networks: z.array(cidr).default([]),
        /** Largest message accepted, in bytes; advertised as SIZE (RFC 1870), 552 above it. */
        max_message_bytes: z.number().int().positive().default(25 * 1024 * 1024),
        /** RCPT TO beyond this gets 452 4.5.3 (RFC 5321 §4.5.3.1.8 asks for at least 100). */
        max_recipients: z.number().int().positive().default(100),
        /**
         * Longest line of message text accepted, in bytes including CRLF; longer gets 552.
         * Lines over RFC 5321's 1000 are accepted up to this cap and the message is made
         * to conform before it is queued (text parts re-encoded quoted-printable, long
         * header lines folded): apps that send unwrapped HTML are common.
         */
        max_line_bytes: z.number().int().min(1000).max(16 * 1024 * 1024).default(64 * 1024),
        /** Concurrent connections allowed from one client IP. */
        max_connections_per_ip: z.number().int().positive().default(20),
        /**
         * Message bytes ingress holds at once across all sessions, from the first byte of DATA
         * until the commit; past it, sessions wait (TCP backpressure) except the oldest, so at
         * most this plus one max_message_bytes message is held.
         */
        receive_budget_bytes: z.number().int().min(1024 * 1024).default(64 * 1024 * 1024),
        /** Concurrent inbound connections across all clients and listeners (Postfix caps its smtpd processes); more get 421. */
        max_connections: z.number().int().positive().default(200),
        /**
         * A message that has already travelled more than this many hops (Received: fields)
         * is refused at the end of DATA (554 5.4.0), and a queued one over it bounces (5.4.6):
         * the end of any mail loop the self-loop checks cannot see (Postfix hop_count_limit).
         */
        max_hops: z.number().int().min(1).max(1000).default(50),
        /**
         * Where RCPT TO:<postmaster> (no domain, which RFC 5321 §4.5.1 requires a server to
         * accept) is delivered; null refuses it with 550 5.1.1 naming this setting.
         */
        postmaster: z.string().regex(/^[^@\s]+@[^@\s]+$/, 'expected an address, e.g. "postmaster@example.org"').nullable().default(null),
        /** Failed AUTH attempts allowed per client IP within the window before refusing more. */
        auth_failure_limit: z.number().int().positive().default(5),
        auth_failure_window_seconds: z.number().positive().default(300),
        /** Idle time before an inbound connection is closed (RFC 5321 §4.5.3.2.7 suggests 5 minutes). */
        socket_timeout_seconds: z.number().positive().default(300),
        /**
         * MAIL FROM is refused with 452 4.3.1 while the store's file system has less free
         * space than this plus the SIZE the client declared (Postfix's queue_minfree);
         * null: 1.5 × max_message_bytes, as Postfix. 0 checks the declared SIZE alone.
         */
        queue_minfree_bytes: z.number().int().nonnegative().nullable().default(null),
      })
      .strict(),
    tls: floorSchema.prefault({}),
    delivery: z
      .object({
        /** SMTP port of MX hosts. Only labs and tests change it (RFC 5321 §4.5.4.1: 25). */
        port: z.number().int().min(1).max(65535).default(25),
        dns: z
          .object({
            /** Resolvers for MX/A/AAAA, "ip", "ip:port" or "[ipv6]:port"; empty uses the system resolver. */
            servers: z.array(dnsServer).default([]),
            timeout_ms: z.number().int().positive().default(5000),
            /**
             * The operator declares `servers` DNSSEC-validating resolvers (on loopback or a
             * trusted link): their AD bit is trusted, and DANE (RFC 7672) can be used.
             */
            dnssec: z.boolean().default(false),
          })
          .strict()
          .refine((d) => !d.dnssec || d.servers.length > 0, { message: 'dnssec: true needs the validating resolver in delivery.dns.servers', path: ['dnssec'] })
          .prefault({}),
        /** Static routes, like Postfix's transport map: domain → "host:port", skipping MX lookup. */
        routes: z.record(z.string(), hostPort).default({}),
        /** Attempts in flight at once across all destinations. */
        concurrency: z.number().int().positive().default(20),
        /** Open connections per destination host. */
        connections_per_host: z.number().int().positive().default(10),
        /**
         * Message bytes being delivered at once (a job holds its message and its signed copy
         * in memory); more waits its turn, and one larger message runs alone.
         */
        inflight_budget_bytes: z.number().int().min(1024 * 1024).default(64 * 1024 * 1024),
        /** A delivery connection is kept open this long for more queued mail to the same host. */
        idle_reuse_ms: z.number().int().nonnegative().default(5000),
        /** Transactions sent over one connection before it is replaced (Postfix smtp_connection_reuse_count_limit). */
        max_transactions_per_connection: z.number().int().positive().default(1000),
        connect_timeout_ms: z.number().int().positive().default(30_000),
        greeting_timeout_ms: z.number().int().positive().default(30_000),
        socket_timeout_ms: z.number().int().positive().default(120_000),
        /** How often the queue is scanned for due work when nothing wakes the worker earlier. */
        poll_interval_ms: z.number().int().positive().default(1000),
        /** A claimed recipient is someone else's after this long (a dead worker loses nothing). */
        lease_seconds: z.number().int().positive().default(600),
        /** On SIGTERM, wait at most this long for attempts in flight. */
        shutdown_grace_seconds: z.number().positive().default(30),
        retry: retrySchema.prefault({}),
      })
      .strict()
      .prefault({}),
    policies: z
      .object({
        default: policyEntry.prefault({ mode: 'opportunistic' }),
        /** Per recipient domain; exact domain names, lower case (shorthand for a rule). */
        domains: z.record(z.string(), policyEntry).default({}),
        /** Ordered rules; every matching rule applies and the strongest requirement wins. */
        rules: z.array(rule).default([]),
        escalation: escalationSchema.prefault({}),
      })
      .strict()
      .superRefine((p, ctx) => {
        const seen = new Set<string>();
        p.rules.forEach((r, i) => {
          if (seen.has(r.name)) ctx.addIssue({ code: 'custom', path: ['rules', i, 'name'], message: `duplicate rule name ${r.name}` });
          seen.add(r.name);
        });
      })
      .prefault({}),
    dlp: z
      .object({
        /** Built-in detectors: ssn, credit-card, mrn, icd10, dob. */
        detectors: z.array(z.string()).default(['ssn', 'credit-card', 'mrn', 'icd10', 'dob']),
        /** Your own: { id, pattern (regular expression, RE2 syntax), flags? (i, m, s, u) }. */
        custom: z
          .array(z.object({ id: z.string().regex(/^[a-z][a-z0-9-]*$/, 'ids are lower-case letters, digits and -'), pattern: z.string().min(1), flags: z.string().regex(/^[imsu]*$/).optional() }).strict())
          .default([]),
        mrn: z.object({ keywords: z.array(z.string()).optional(), id_pattern: z.string().optional() }).strict().optional(),
        dob: z.object({ within_chars: z.number().int().positive().optional() }).strict().optional(),
        /** Scan budget per message; a scan cut short counts as the hit `incomplete`. */
        max_bytes: z.number().int().positive().default(25 * 1024 * 1024),
        max_ms: z.number().int().positive().default(2000),
        /** Raise every message with a DLP hit to this mode (null: only rules that name detectors act). */
        escalate_to: deliverableMode.nullable().default(null),
      })
      .strict()
      .superRefine((d, ctx) => {
        // Each pattern on its own first, so the problem points at its key.
        const problems = [
          ...d.custom.map((c, i) => ({ path: ['custom', i, 'pattern'], why: regexProblem(() => checkDetectorRegex(c.pattern, c.flags ?? '')) })),
          ...(d.mrn?.id_pattern === undefined ? [] : [{ path: ['mrn', 'id_pattern'], why: regexProblem(() => checkDetectorRegex(d.mrn?.id_pattern as string, 'i')) }]),
        ].filter((p) => p.why !== null);
        for (const p of problems) ctx.addIssue({ code: 'custom', path: p.path, message: p.why as string });
        if (problems.length) return;
        try {
          buildDetectors({ builtins: d.detectors, custom: d.custom, mrn: d.mrn && { keywords: d.mrn.keywords, idPattern: d.mrn.id_pattern }, dob: d.dob && { withinChars: d.dob.within_chars } });
        } catch (err) {
          ctx.addIssue({ code: 'custom', path: [], message: (err as Error).message });
        }
      })
      .prefault({}),
    domains: z
      .object({
        /** How often the STARTTLS status of watched domains is re-probed, in seconds (daily). */
        probe_interval_seconds: z.number().int().positive().default(86_400),
        /** Besides the domains named in the policy, probe those with a delivery attempt within this many days. */
        probe_recent_days: z.number().int().positive().default(7),
      })
      .strict()
      .prefault({}),
    mta_sts: z
      .object({
        /** Honour recipient domains' MTA-STS policies (RFC 8461). */
        enabled: z.boolean().default(true),
        /** PEM bundle trusted for the HTTPS policy fetch; null = the system store. */
        ca_file: z.string().nullable().default(null),
        /** Port of the policy web server: 443; only tests change it. */
        https_port: z.number().int().min(1).max(65535).default(443),
        timeout_ms: z.number().int().positive().default(10_000),
        /** Least time between checks of a domain's _mta-sts TXT id, in seconds. */
        recheck_seconds: z.number().positive().default(60),
        /** After a failed fetch with nothing cached, wait this long before trying again, in seconds. */
        failure_backoff_seconds: z.number().positive().default(300),
      })
      .strict()
      .prefault({}),
    /** Daily TLS reports (RFC 8460) to the recipient domains that ask for them (reporting/tlsrpt/). */
    tlsrpt: z
      .object({
        /** Off by default: reports tell other organisations how much this relay sent them, and from where. */
        enabled: z.boolean().default(false),
        /** The report's organization-name; null: the submitter. */
        organization_name: z.string().min(1).max(200).nullable().default(null),
        /** The report's contact-info (an address people at the domain may write to); null: postmaster@<submitter>. */
        contact_info: z.string().min(1).max(200).nullable().default(null),
        /** The domain named as the reporter (TLS-Report-Submitter, file names); null: server.hostname. */
        submitter: z.string().min(1).max(253).nullable().default(null),
        /** From and envelope sender of mailto: reports; null: noreply-tlsrpt@<submitter>. */
        from: z.email('expected an email address, e.g. tlsrpt@relay.example').nullable().default(null),
        /** Reports are made this many minutes after 00:00 UTC at most (a random share of it), so reporters do not all send at once. */
        jitter_minutes: z.number().int().min(0).max(720).default(60),
        /** A destination still failing this long after the report was made is given up, in hours. */
        retry_hours: z.number().positive().max(24 * 7).default(24),
        /** Deadline of one https: POST, in ms. */
        timeout_ms: z.number().int().positive().default(30_000),
        /** PEM bundle trusted for https: destinations; null = the system store. */
        ca_file: z.string().nullable().default(null),
        /** POST to https: destinations on loopback or private networks (a recipient's DNS names them: off, except for tests and labs). */
        allow_private_destinations: z.boolean().default(false),
      })
      .strict()
      .prefault({}),
    crypto: z
      .object({
        pgp: z
          .object({
            /** Every PGP message is also encrypted to this public key (archive/escrow); null: none. */
            archive_key_file: z.string().nullable().default(null),
            /** Sign inside the encryption with this armored private key; null: unsigned. */
            signing_key_file: z.string().nullable().default(null),
            /** File holding that key's passphrase (secrets never live in this YAML). */
            signing_passphrase_file: z.string().nullable().default(null),
            /** Outer Subject of encrypted mail; the real one travels inside (protected headers). null keeps it. */
            subject_placeholder: z.string().min(1).nullable().default(null),
          })
          .strict()
          .prefault({}),
        smime: z
          .object({
            /** Every S/MIME message is also encrypted to this certificate (archive/escrow); null: none. */
            archive_cert_file: z.string().nullable().default(null),
            /** Sign (multipart/signed, inside the encryption) with this certificate and key; null: unsigned. */
            signing_cert_file: z.string().nullable().default(null),
            signing_key_file: z.string().nullable().default(null),
          })
          .strict()
          .refine((s) => (s.signing_cert_file === null) === (s.signing_key_file === null), 'signing_cert_file and signing_key_file go together')
          .prefault({}),
        /** OpenPGP Web Key Directory: look up a recipient's key over HTTPS when none is held. */
        wkd: z
          .object({
            enabled: z.boolean().default(true),
            /** PEM bundle trusted for the HTTPS lookup; null = the system store. */
            ca_file: z.string().nullable().default(null),
            /** Port of the key web server: 443; only tests change it. */
            https_port: z.number().int().min(1).max(65535).default(443),
            timeout_ms: z.number().int().positive().default(10_000),
            /** A key found is looked up again after this long (it may have been revoked), in seconds. */
            cache_seconds: z.number().positive().default(86_400),
            /** "No key" or a failed lookup is remembered this long, in seconds. */
            negative_cache_seconds: z.number().positive().default(3600),
          })
          .strict()
          .prefault({}),
        /**
         * Message bytes of sealed copies in work at once, each counted from the start of its
         * encryption (PGP holds about six copies meanwhile) until it is delivered; more waits
         * its turn, and one larger message runs alone.
         */
        encryption_budget_bytes: z.number().int().min(1024 * 1024).default(DEFAULT_ENCRYPTION_BUDGET_BYTES),
      })
      .strict()
      .prefault({}),
    dkim: z
      .object({
        /** Signing keys per sender domain (the From header's domain, or a parent of it): selector and PEM key file. */
        domains: z
          .record(
            z.string(),
            z.object({ selector: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'a selector is a DNS label (letters, digits, -, _ and dots)'), key_file: z.string() }).strict(),
          )
          .default({}),
      })
      .strict()
      .prefault({}),
    portal: z
      .object({
        /** Master keys that wrap each item's data key; items under any of them stay readable. */
        master_keys: z.array(portalMasterKey).default([]),
        /** The id of the key new items are sealed with and `portal rewrap` moves items to: named, never guessed. */
        current_key: z.string().nullable().default(null),
        /** How often the relay erases items past their expiry, in seconds. */
        expiry_sweep_seconds: z.number().int().positive().default(300),
        /** The recipients' HTTPS listener (src/http/), "host:port" or a port (127.0.0.1); null: none. */
        listen: webListen,
        /** The portal as recipients reach it (links, and the origin forms must come from); null: https://<listen>. */
        public_url: publicUrl,
        /** Who the notifications are from (From and envelope of code emails); null: portal@<server.hostname>. */
        from: z.email('expected an email address, e.g. secure@clinic.example').nullable().default(null),
        /** What the notification email and the pages show of the sending organisation. */
        organisation: z
          .object({
            name: z.string().min(1).max(200).default('Secure messages'),
            /** The accent colour of the email and pages, "#rrggbb". */
            colour: z.string().regex(/^#[0-9a-fA-F]{6}$/, 'expected a colour as "#rrggbb"').default('#1f4e79'),
            /** An https URL of the logo for the notification email (pages never load remote content); null: none. */
            logo_url: z.url({ protocol: /^https$/, error: 'expected an https:// URL' }).nullable().default(null),
            /** A line at the foot of the notification, e.g. the clinic's address and phone number. */
            footer: z.string().max(1000).default(''),
          })
          .strict()
          .prefault({}),
        /** A header through which a sender adds a short, non-sensitive line to the notification; removed from the stored message. */
        notice_header: z.string().regex(/^[\x21-\x39\x3b-\x7e]+$/, 'expected a header field name').default('X-Portal-Notice'),
        /** Default lifetime of an item, in days (rules may set their own: portal.expiry_days). */
        expiry_days: z.number().int().min(1).max(3650).default(30),
        /** The notification names the subject (default no; rules may allow it). */
        show_subject: z.boolean().default(false),
        /** Proof of address: the one-time code sent to the recipient. */
        code: z
          .object({
            digits: z.number().int().min(6).max(10).default(6),
            lifetime_seconds: z.number().int().min(60).max(86400).default(600),
            tries: z.number().int().min(1).max(10).default(5),
            /** After the last wrong try the item refuses codes this long. */
            lock_seconds: z.number().int().min(60).default(900),
          })
          .strict()
          .prefault({}),
        /** A verified recipient's session ends after this long without a request. */
        session_idle_seconds: z.number().int().min(60).max(86400).default(900),
        /** A secure reply's text and attachments together, in bytes. */
        reply_max_bytes: z.number().int().min(1024).max(50 * 1024 * 1024).default(10 * 1024 * 1024),
      })
      .strict()
      .superRefine((p, ctx) => {
        const ids = new Set<string>();
        p.master_keys.forEach((k, i) => {
          if (ids.has(k.id)) ctx.addIssue({ code: 'custom', path: ['master_keys', i, 'id'], message: `duplicate master key id ${k.id}` });
          ids.add(k.id);
        });
        if (p.current_key === null && ids.size) ctx.addIssue({ code: 'custom', path: ['current_key'], message: 'name the master key new items use (one of the master_keys ids)' });
        if (p.current_key !== null && !ids.has(p.current_key)) {
          ctx.addIssue({ code: 'custom', path: ['current_key'], message: `no master key with id ${p.current_key} in portal.master_keys` });
        }
      })
      .prefault({}),
    api: z
      .object({
        /** The HTTPS listener of the API, dashboard and /healthz (src/http/), "host:port" or a port (127.0.0.1); null: none. */
        listen: webListen,
        /** An Idempotency-Key is remembered this long: a retry within it gets the first answer, never a second message. */
        idempotency_hours: z.number().int().min(1).max(24 * 30).default(24),
        /** Requests with a missing, wrong, expired or revoked token allowed per client IP within the window; past it, 429 until the window ends. */
        auth_failure_limit: z.number().int().positive().default(20),
        auth_failure_window_seconds: z.number().int().positive().default(300),
      })
      .strict()
      .prefault({}),
    reports: z
      .object({
        /** The header that names a message's campaign: read at ingress, then stripped before delivery (the API's `campaign` field sets the same). */
        campaign_header: headerName.default('X-Campaign-ID'),
        /** A header whose value reports may split by (e.g. "X-Department"), kept in the message; null: none. */
        custom_header: headerName.nullable().default(null),
      })
      .strict()
      .prefault({}),
    /** Signed webhooks: endpoints, their event types and secrets, retry (config/webhooks.ts). */
    webhooks: webhooksSchema,
    tracking: z
      .object({
        /** Where the pixel, click and unsubscribe links point; null: portal.public_url, else the portal listener. */
        public_url: publicUrl,
        /** The HMAC key that signs the links: 32 random bytes in base64 (`sealrelay portal keygen` makes one), from a file (chmod 600) or an environment variable. */
        key: z
          .object({ file: z.string().min(1).optional(), env: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'expected an environment variable name, e.g. SEALRELAY_TRACKING_KEY').optional() })
          .strict()
          .refine((k) => (k.file === undefined) !== (k.env === undefined), 'give the key as file or env (one of them)')
          .nullable()
          .default(null),
        /** An open this soon after delivery is marked automated (image prefetching, e.g. Apple Mail Privacy Protection). */
        machine_open_seconds: z.number().int().min(0).max(3600).default(2),
        /** A click this soon after delivery is marked automated (link scanners). */
        machine_click_seconds: z.number().int().min(0).max(3600).default(10),
      })
      .strict()
      .prefault({}),
    evidence: z
      .object({
        /** The relay's Ed25519 private key (PKCS#8 PEM, mode 0600) that signs evidence files (`sealrelay evidence keygen`); null: evidence cannot be signed. */
        signing_key_file: z.string().nullable().default(null),
      })
      .strict()
      .prefault({}),
    logging: z
      .object({
        level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
        /** Subjects may carry PHI: they are logged only when this is true. */
        log_subjects: z.boolean().default(false),
        /**
         * Log bytes held in memory while the log cannot be written (a full disk, a closed
         * pipe); past this, lines are dropped and counted (log-destination.ts). Read at start.
         */
        backlog_bytes: z.number().int().min(16 * 1024).default(4 * 1024 * 1024),
        /**
         * Where the log goes: null, stdout (journald, Docker); a path, that file, mode 0640, in
         * a directory that must exist. Reopened on SIGHUP, for logrotate (log-file.ts). Read at start.
         */
        file: z.string().min(1).nullable().default(null),
        /** Rotation of logging.file by pino-roll: by size, by time or both; files numbered NAME.1.log, NAME.2.log… */
        rotate: z
          .object({
            /** A file is closed and the next one begun once it holds this many bytes; null: no size limit. */
            max_bytes: z.number().int().min(1024).nullable().default(null),
            /** A new file each hour or each day (local time); null: not by time. */
            every: z.enum(['hourly', 'daily']).nullable().default(null),
            /** Files kept, the one being written included; older ones are removed at each rotation. */
            keep: z.number().int().min(1).max(1000).default(10),
          })
          .strict()
          .nullable()
          .default(null),
      })
      .strict()
      .refine((l) => l.rotate === null || l.file !== null, { path: ['rotate'], message: 'rotation needs logging.file (stdout is not rotated)' })
      .refine((l) => l.rotate === null || l.rotate.max_bytes !== null || l.rotate.every !== null, { path: ['rotate'], message: 'set max_bytes, every or both' })
      .prefault({}),
  })
  .strict()
  // A rule naming a detector that is not configured would never fire: an error on that rule.
  .superRefine((c, ctx) => {
    const known = new Set([...c.dlp.detectors, ...c.dlp.custom.map((d) => d.id), INCOMPLETE_SCAN]);
    c.policies.rules.forEach((r, i) =>
      r.match.dlp?.forEach((id, j) => {
        if (!known.has(id)) ctx.addIssue({ code: 'custom', path: ['policies', 'rules', i, 'match', 'dlp', j], message: `unknown DLP detector "${id}" (configured: ${[...known].join(', ')})` });
      }),
    );
  })
  // Naming the portal (a mode or an explicit step) needs the portal itself: keys to seal
  // items with, and an address for the links. (forced's default chain ends with the
  // portal only when it is configured; its record says "portal: not configured" otherwise.)
  .superRefine((c, ctx) => {
    for (const path of portalUses(c)) {
      if (!c.portal.master_keys.length) ctx.addIssue({ code: 'custom', path, message: 'the portal needs portal.master_keys (sealrelay portal keygen) and portal.current_key' });
      else if (c.portal.listen === null && c.portal.public_url === null) ctx.addIssue({ code: 'custom', path, message: 'the portal needs portal.listen (and portal.public_url behind a proxy)' });
    }
  })
  // Tracking's links are served by the portal listener and signed with tracking.key: a rule asking for it needs both.
  .superRefine((c, ctx) => {
    c.policies.rules.forEach((r, i) => {
      if (!r.tracking || !(r.tracking.opens || r.tracking.clicks || r.tracking.unsubscribe)) return;
      const path = ['policies', 'rules', i, 'tracking'];
      if (c.portal.listen === null) ctx.addIssue({ code: 'custom', path, message: 'tracking needs the public web listener: portal.listen (and tracking.public_url or portal.public_url behind a proxy)' });
      if (c.tracking.key === null) ctx.addIssue({ code: 'custom', path, message: 'tracking needs tracking.key (a file or environment variable holding 32 random bytes in base64)' });
    });
  })
  // DANE trusts the resolver's AD bit: only when the operator said the resolvers validate.
  .superRefine((c, ctx) => {
    if (c.delivery.dns.dnssec) return;
    for (const { path, value } of verificationsOf(c)) {
      if (value === 'dane' || value === 'dane-only') {
        ctx.addIssue({ code: 'custom', path, message: `verification ${value} needs DNSSEC: set delivery.dns.dnssec: true with a validating resolver (e.g. unbound on 127.0.0.1) in delivery.dns.servers` });
      }
    }
  });

type VerificationUser = { verification?: string | undefined };

/** Every verification the config names, with its path. */
function verificationsOf(c: { policies: { default: VerificationUser; domains: Record<string, VerificationUser>; rules: readonly VerificationUser[] } }): { path: (string | number)[]; value: string }[] {
  const out: { path: (string | number)[]; value: string }[] = [];
  const check = (e: VerificationUser, path: (string | number)[]) => {
    if (e.verification !== undefined) out.push({ path: [...path, 'verification'], value: e.verification });
  };
  check(c.policies.default, ['policies', 'default']);
  for (const [d, e] of Object.entries(c.policies.domains)) check(e, ['policies', 'domains', d]);
  c.policies.rules.forEach((r, i) => check(r, ['policies', 'rules', i]));
  return out;
}

type PortalUser = { mode: string; fallback?: readonly string[] | undefined };

/** Where the config names the portal as a mode or a fallback step: the settings' paths. */
function portalUses(c: { policies: { default: PortalUser; domains: Record<string, PortalUser>; rules: readonly PortalUser[]; escalation: { subject_tag: { mode: string } | null } }; dlp: { escalate_to: string | null } }): (string | number)[][] {
  const out: (string | number)[][] = [];
  const check = (e: PortalUser, path: (string | number)[]) => {
    if (e.mode === 'portal') out.push([...path, 'mode']);
    const i = e.fallback?.indexOf('portal') ?? -1;
    if (i >= 0) out.push([...path, 'fallback', i]);
  };
  check(c.policies.default, ['policies', 'default']);
  for (const [d, e] of Object.entries(c.policies.domains)) check(e, ['policies', 'domains', d]);
  c.policies.rules.forEach((r, i) => check(r, ['policies', 'rules', i]));
  if (c.policies.escalation.subject_tag?.mode === 'portal') out.push(['policies', 'escalation', 'subject_tag', 'mode']);
  if (c.dlp.escalate_to === 'portal') out.push(['dlp', 'escalate_to']);
  return out;
}

export type Config = z.infer<typeof configSchema>;
export type RuleConfig = Config['policies']['rules'][number];
export type Mode = (typeof MODES)[number];
export type Verification = (typeof VERIFICATIONS)[number];
export type TlsVersion = (typeof TLS_VERSIONS)[number];

/** Why `compile` throws (a pattern RE2 refuses, …), or null when it does not. */
function regexProblem(compile: () => unknown): string | null {
  try {
    compile();
    return null;
  } catch (err) {
    return (err as Error).message;
  }
}

function isCidr(value: string): boolean {
  const [addr, bits, ...rest] = value.split('/');
  if (rest.length || !addr) return false;
  const family = addr.includes(':') ? 6 : 4;
  if (!/^[0-9a-fA-F:.]+$/.test(addr)) return false;
  if (bits === undefined) return true;
  const n = Number(bits);
  return Number.isInteger(n) && n >= 0 && n <= (family === 4 ? 32 : 128);
}
