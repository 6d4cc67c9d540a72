// OpenPGP Web Key Directory (draft-koch-openpgp-webkey-service): find a recipient's
// public key on their mail domain's web server, when no key is held for them.
//
// Policy:
// - URL (§3.1): the local part, ASCII A-Z mapped to lower case (as GnuPG does; other
//   characters are kept), is hashed with SHA-1 and z-base-32 encoded; the unchanged
//   local part goes in the `l` query parameter. The advanced method
//   (https://openpgpkey.<domain>/.well-known/openpgpkey/<domain>/hu/<hash>) is used
//   when openpgpkey.<domain> has an address, otherwise the direct method
//   (https://<domain>/.well-known/openpgpkey/hu/<hash>). A failure of the advanced
//   host other than "no address" does not fall back: that host is the domain's choice.
// - Transport is net/https-get.ts: certificate checked for the host, no redirects,
//   one deadline, the body capped at KEY_MAX_BYTES.
// - Answer: 404/410, or no address for either host, means no key is published
//   (`none`); 5xx, DNS failures, refused connections and timeouts are temporary
//   errors; anything else is a permanent error.
// - Content: a 200 body is binary OpenPGP keys. Only keys with a valid self-signed user
//   ID carrying the looked-up address are kept, and of those only such user IDs (as
//   GnuPG's WKD import does), so a directory cannot attach other identities. A revoked
//   user ID binds nothing; a revoked key is passed on, as its revocation is news the
//   key store needs. A body with no such key is an error, not "none": the domain
//   published something wrong.
import { createHash } from 'node:crypto';
import { domainToASCII } from 'node:url';
import * as openpgp from 'openpgp';
import { httpsGet, HttpsGetError, type HttpsResponse } from '../net/https-get.ts';

export interface WkdOptions {
  /** "ip" or "ip:port"; empty uses c-ares' defaults (resolv.conf). */
  readonly dnsServers: readonly string[];
  /** DNS per-query timeout, and the deadline of each HTTPS request, in ms. */
  readonly timeoutMs: number;
  /** Trust store (PEM) for the HTTPS requests; the system store when absent. */
  readonly ca?: string | Buffer;
  /** HTTPS port of the key server (443; tests change it). */
  readonly port?: number;
  /** Address of a host (null: it has none); by default its A, then AAAA, through `dnsServers`. */
  readonly resolveHost?: (host: string) => string | null | Promise<string | null>;
}

export type WkdResult =
  | { readonly kind: 'found'; readonly keyBytes: Uint8Array; readonly method: 'advanced' | 'direct'; readonly url: string }
  | { readonly kind: 'none'; readonly detail: string }
  | { readonly kind: 'error'; readonly reason: string; readonly temporary: boolean };

/** Largest key answer accepted, in bytes: a key with many signatures stays well under. */
export const KEY_MAX_BYTES = 256 * 1024;
const WELL_KNOWN = '/.well-known/openpgpkey';
/** z-base-32 alphabet (RFC 6189 §5.1.6). */
const ZBASE32 = 'ybndrfg8ejkmcpqxot1uwisza345h769';
/** Statuses that say "no key here" rather than "something is wrong". */
const NOT_PUBLISHED: ReadonlySet<number> = new Set([404, 410]);

function zbase32(bytes: Uint8Array): string {
  let out = '';
  let buffer = 0;
  let bits = 0;
  for (const byte of bytes) {
    buffer = (buffer << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out += ZBASE32[(buffer >>> bits) & 31];
    }
    buffer &= (1 << bits) - 1;
  }
  if (bits > 0) out += ZBASE32[(buffer << (5 - bits)) & 31];
  return out;
}

/** The WKD hash of a local part: z-base-32 of SHA-1 of it with A-Z lower-cased (32 characters). */
export function wkdHash(localPart: string): string {
  const lowered = localPart.replace(/[A-Z]+/g, (s) => s.toLowerCase());
  return zbase32(createHash('sha1').update(lowered, 'utf8').digest());
}

/** Local part as given, domain in lower case A-labels without a trailing dot; null if not an address. */
function splitAddress(address: string): { local: string; domain: string } | null {
  const at = address.lastIndexOf('@');
  if (at < 1) return null;
  const local = address.slice(0, at);
  const raw = address.slice(at + 1).toLowerCase().replace(/\.$/, '');
  const domain = /[^ -~]/.test(raw) ? domainToASCII(raw) : raw;
  if (!/^[a-z0-9_-]+(?:\.[a-z0-9_-]+)+$/.test(domain)) return null;
  return { local, domain };
}

const sameAddress = (a: { local: string; domain: string }, b: { local: string; domain: string }) =>
  a.domain === b.domain && a.local.toLowerCase() === b.local.toLowerCase();

/** The keys in `body` with a valid user ID for `wanted`, stripped of their other user IDs. */
async function keysCarrying(body: Uint8Array, wanted: { local: string; domain: string }): Promise<openpgp.PublicKey[]> {
  const keys = await openpgp.readKeys({ binaryKeys: body });
  const kept: openpgp.PublicKey[] = [];
  for (const read of keys) {
    const key = read.isPrivate() ? read.toPublic() : read;
    const users: openpgp.User[] = [];
    for (const user of key.users) {
      const email = user.userID?.email;
      const parts = email ? splitAddress(email) : null;
      if (!parts || !sameAddress(parts, wanted)) continue;
      try {
        await user.verify();
        users.push(user);
      } catch {
        // Not self-signed by this key, revoked or expired: it does not bind the address.
      }
    }
    if (!users.length) continue;
    key.users = users;
    kept.push(key);
  }
  return kept;
}

async function judge(res: HttpsResponse, method: 'advanced' | 'direct', address: string, wanted: { local: string; domain: string }): Promise<WkdResult> {
  if (NOT_PUBLISHED.has(res.status)) return { kind: 'none', detail: `no key published at ${res.url} (HTTP ${res.status})` };
  if (res.status >= 300 && res.status < 400) {
    return { kind: 'error', reason: `${res.url}: redirect ${res.status} to ${res.location ?? '(no location)'} not followed`, temporary: false };
  }
  if (res.status !== 200) return { kind: 'error', reason: `${res.url}: HTTP ${res.status}`, temporary: res.status >= 500 };
  let keys: openpgp.PublicKey[];
  try {
    keys = await keysCarrying(res.body, wanted);
  } catch (err) {
    return { kind: 'error', reason: `${res.url}: not binary OpenPGP keys (${(err as Error).message})`, temporary: false };
  }
  if (!keys.length) return { kind: 'error', reason: `${res.url}: no key in the answer has a valid user ID for ${address}`, temporary: false };
  return { kind: 'found', keyBytes: Buffer.concat(keys.map((key) => key.write())), method, url: res.url };
}

/** Looks up the key of `address` by WKD: the advanced method, or the direct one when its host has no address. */
export async function lookupWkd(address: string, opts: WkdOptions): Promise<WkdResult> {
  const wanted = splitAddress(address.trim());
  if (!wanted) return { kind: 'error', reason: `not a mail address: ${JSON.stringify(address)}`, temporary: false };
  const { local, domain } = wanted;
  const query = `${wkdHash(local)}?l=${encodeURIComponent(local)}`;
  const get = (host: string, path: string) => httpsGet(host, path, { ...opts, maxBytes: KEY_MAX_BYTES, accept: 'application/octet-stream' });
  let method: 'advanced' | 'direct' = 'advanced';
  try {
    let res: HttpsResponse;
    try {
      res = await get(`openpgpkey.${domain}`, `${WELL_KNOWN}/${domain}/hu/${query}`);
    } catch (err) {
      if (!(err instanceof HttpsGetError && err.kind === 'no-address')) throw err;
      method = 'direct';
      try {
        res = await get(domain, `${WELL_KNOWN}/hu/${query}`);
      } catch (direct) {
        if (!(direct instanceof HttpsGetError && direct.kind === 'no-address')) throw direct;
        return { kind: 'none', detail: `neither openpgpkey.${domain} nor ${domain} has an address` };
      }
    }
    return await judge(res, method, `${local}@${domain}`, wanted);
  } catch (err) {
    if (err instanceof HttpsGetError) return { kind: 'error', reason: `WKD ${method}: ${err.reason}`, temporary: err.temporary };
    // A caller's resolveHost that throws.
    return { kind: 'error', reason: `WKD ${method} lookup for ${domain}: ${(err as Error).message}`, temporary: true };
  }
}
