// Finding the key to encrypt to: the key store first, then (OpenPGP only) the
// recipient domain's Web Key Directory. What WKD finds is kept in the store
// (source "wkd") and every lookup's answer — found, none, failed — is remembered
// for a while, so a busy queue asks a domain's key server once, not per message.
import { normaliseAddress, type KeyKind, type RecipientKey, type Store } from '../store/store.ts';
import { chooseKey, keyProblem } from './choose-key.ts';
import { parseKeyFile } from './keys.ts';
import { lookupWkd, type WkdOptions } from './wkd.ts';

export type KeyAnswer =
  | { readonly ok: true; readonly key: RecipientKey }
  /** `temporary`: the answer may change soon (a key server failed), so defer rather than give up. */
  | { readonly ok: false; readonly why: string; readonly temporary: boolean };

export interface KeyFinderOptions {
  readonly store: Store;
  /** WKD lookups; null turns discovery off. */
  readonly wkd: (WkdOptions & { readonly cacheMs: number; readonly negativeCacheMs: number }) | null;
  readonly now?: () => number;
}

export interface KeyFinder {
  find(address: string, kind: KeyKind): Promise<KeyAnswer>;
}

const KIND_NAME: Readonly<Record<KeyKind, string>> = { pgp: 'OpenPGP key', smime: 'S/MIME certificate' };

export function createKeyFinder(opts: KeyFinderOptions): KeyFinder {
  const { store } = opts;
  const now = opts.now ?? Date.now;
  /** One lookup per address at a time: concurrent jobs for one recipient share it. */
  const inFlight = new Map<string, Promise<KeyAnswer>>();

  async function held(address: string, kind: KeyKind): Promise<KeyAnswer> {
    const keys = await store.keysFor(address, kind);
    const key = chooseKey(keys, kind, now());
    if (key) return { ok: true, key };
    const problems = keys.map((k) => `${k.fingerprint.slice(-16)} ${keyProblem(k, now()) ?? 'not chosen'}`);
    return { ok: false, why: problems.length ? `no usable ${KIND_NAME[kind]} for ${address} (${problems.join('; ')})` : `no ${KIND_NAME[kind]} for ${address}`, temporary: false };
  }

  async function discover(address: string, fromStore: KeyAnswer & { ok: false }): Promise<KeyAnswer> {
    const wkd = opts.wkd!;
    const last = await store.getKeyLookup(address);
    if (last && last.expiresAt > now()) {
      // A key found then is in the store and was judged above; otherwise say what the lookup said.
      return { ok: false, why: `${fromStore.why}; WKD: ${last.error ?? (last.found ? 'key found earlier is not usable' : 'no key published')}`, temporary: last.error !== null };
    }
    const at = now();
    const result = await lookupWkd(address, wkd);
    if (result.kind === 'error') {
      await store.recordKeyLookup({ address, lookedUpAt: at, found: false, expiresAt: at + wkd.negativeCacheMs, error: result.reason });
      return { ok: false, why: `${fromStore.why}; WKD lookup failed: ${result.reason}`, temporary: result.temporary };
    }
    if (result.kind === 'none') {
      await store.recordKeyLookup({ address, lookedUpAt: at, found: false, expiresAt: at + wkd.negativeCacheMs, error: null });
      return { ok: false, why: `${fromStore.why}; WKD: ${result.detail}`, temporary: false };
    }
    // `known`: a copy of a key we hold is merged into it, so a revocation we know of survives.
    const parsed = await parseKeyFile(result.keyBytes, { source: 'wkd', now: at, known: (fingerprint) => store.getKey(fingerprint) });
    const carrying = parsed.keys.filter((k) => k.addresses.includes(address));
    for (const key of carrying) await store.putKey(key);
    await store.recordKeyLookup({ address, lookedUpAt: at, found: carrying.length > 0, expiresAt: at + (carrying.length ? wkd.cacheMs : wkd.negativeCacheMs), error: null });
    const key = chooseKey(carrying, 'pgp', at);
    if (key) return { ok: true, key };
    const why = carrying.length ? carrying.map((k) => keyProblem(k, at)).join('; ') : parsed.problems.join('; ') || `no key for ${address} in the answer`;
    return { ok: false, why: `${fromStore.why}; WKD (${result.method}) key not usable: ${why}`, temporary: false };
  }

  return {
    async find(rawAddress, kind) {
      const address = normaliseAddress(rawAddress);
      if (!address) return { ok: false, why: `"${rawAddress}" is not an address a key can carry`, temporary: false };
      const fromStore = await held(address, kind);
      if (fromStore.ok || kind !== 'pgp' || !opts.wkd) return fromStore;
      let pending = inFlight.get(address);
      if (!pending) {
        pending = discover(address, fromStore).finally(() => inFlight.delete(address));
        inFlight.set(address, pending);
      }
      return pending;
    },
  };
}
