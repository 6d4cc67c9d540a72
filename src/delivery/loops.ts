// Mail loops, on the delivery side. Two checks, both Postfix's:
//
// - the hop limit: a queued message that has already travelled more than
//   ingress.max_hops hops bounces (5.4.6) instead of travelling on. Ingress refuses
//   such a message at the end of DATA; this catches what was queued before the limit
//   was lowered by a reload. The queued copy carries our own Received: stamp on top,
//   so its hops before us are its Received: fields minus one — the same count
//   ingress compared when it accepted it.
// - the self-loop: a next hop that is this relay itself (one of its own listeners by
//   address and port, or an MX host named like it) would hand the message straight
//   back to ingress, hundreds of times a second. Like Postfix, an MX list that names
//   us keeps only the hosts preferred over us; with none left, the recipients bounce
//   with "mail for <domain> loops back to myself" and nothing is sent.
import net from 'node:net';
import os from 'node:os';
import { countHops } from '../mime/hops.ts';
import type { Job, RecipientResult } from './attempt.ts';
import type { Destination, MxTarget } from './resolve-mx.ts';

/** An address and port this relay's ingress is bound to (the actual port: tests bind port 0). */
export interface OwnListener {
  readonly host: string;
  readonly port: number;
}

/** What the relay knows of itself when it looks at a next hop. */
export interface Self {
  /** server.hostname: an MX host of that name is this relay. */
  readonly hostname: string;
  readonly listeners: readonly OwnListener[];
}

/** Hops a queued message made before it reached us: its Received: fields less our own stamp. */
export function hopsBeforeUs(queued: Buffer): number {
  return Math.max(0, countHops(queued) - 1);
}

/** Every recipient of the job bounced for too many hops, nothing sent (RFC 3463 X.4.6: routing loop detected). */
export function tooManyHops(job: Job, hops: number, maxHops: number): RecipientResult[] {
  const response = `Too many hops: the message travelled ${hops} hops (Received: fields before ours), ingress.max_hops is ${maxHops}`;
  return job.items.map((item) => ({ item, outcome: 'bounced', method: 'none', mx: null, starttlsOffered: null, tls: null, smtp: { code: 554, enhanced: '5.4.6', response } }));
}

/**
 * The hosts of a destination that are not this relay and that it may hand the mail
 * to: a static route to ourselves leaves nothing; in an MX list that names us, only
 * the hosts preferred over us (lower preference) stay, since the others would send
 * it back to us or to an equal peer (RFC 5321 §5.1). Empty means a loop.
 */
export function withoutSelf(destination: Exclude<Destination, { kind: 'null-mx' }>, self: Self): readonly MxTarget[] {
  const byName = destination.kind !== 'route';
  const ours = destination.hosts.filter((h) => isSelf(h, self, byName));
  if (!ours.length) return destination.hosts;
  if (destination.kind === 'route') return [];
  const best = Math.min(...ours.map((h) => h.preference ?? 0));
  return destination.hosts.filter((h) => (h.preference ?? 0) < best && !isSelf(h, self));
}

/** The reason a loop is reported with (Postfix's wording), naming the hosts that are us. */
export function loopReason(domain: string, destination: Exclude<Destination, { kind: 'null-mx' }>, self: Self): string {
  const us = destination.hosts.filter((h) => isSelf(h, self, destination.kind !== 'route')).map((h) => `${h.host}[${h.ip}]:${h.port}`);
  return `mail for ${domain} loops back to myself (${us.join(', ')} is this relay)`;
}

/**
 * Is this next hop the relay itself? By address and port always; by name (an MX host
 * called server.hostname) only for MX hosts: a static route to our own name on another
 * port is a service beside us (a content filter on 10025, say), not a loop.
 */
export function isSelf(target: MxTarget, self: Self, byName = true): boolean {
  if (byName && sameName(target.host, self.hostname)) return true;
  const ip = plainIp(target.ip);
  for (const listener of self.listeners) {
    if (listener.port !== target.port) continue;
    const bound = listenerAddress(listener.host);
    if (bound === ip) return true;
    if (bound === '0.0.0.0' && net.isIPv4(ip) && isLocal(ip)) return true;
    // A listener on :: takes IPv4 too (dual stack), as Node binds it by default.
    if (bound === '::' && isLocal(ip)) return true;
  }
  return false;
}

function sameName(a: string, b: string): boolean {
  const norm = (s: string) => s.toLowerCase().replace(/\.$/, '');
  return norm(a) === norm(b);
}

/** An IPv4-mapped IPv6 address as IPv4, so "::ffff:127.0.0.1" is 127.0.0.1. */
function plainIp(ip: string): string {
  const lower = ip.toLowerCase();
  return lower.startsWith('::ffff:') && net.isIPv4(lower.slice(7)) ? lower.slice(7) : lower;
}

/** A listener's bind address in the form target IPs are compared in; a name binds loopback only when it is localhost. */
function listenerAddress(host: string): string {
  const h = plainIp(host.replace(/^\[|\]$/g, ''));
  if (h === '' || h === '::0' || h === '0:0:0:0:0:0:0:0') return h === '' ? '0.0.0.0' : '::';
  if (h === 'localhost') return '127.0.0.1';
  return h;
}

/** Loopback, or an address of one of this machine's interfaces. */
function isLocal(ip: string): boolean {
  if (net.isIPv4(ip) && ip.startsWith('127.')) return true;
  if (ip === '::1') return true;
  for (const addresses of Object.values(os.networkInterfaces())) {
    for (const a of addresses ?? []) if (plainIp(a.address) === ip) return true;
  }
  return false;
}
