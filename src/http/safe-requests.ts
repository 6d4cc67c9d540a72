// GET never changes state. Mail scanners (Safe Links, URL Defense) and link
// previews fetch every link in a message before the person does, so anything a
// GET did would be done by a machine. Two things hold the line:
//
//  - assertMayChangeState: every state-changing helper (sessions, lockout
//    counters, and whatever a feature adds) calls it with the request first, and a
//    GET/HEAD/OPTIONS request that reaches one is a 500, never a change;
//  - StateProbes: each holder of state registers a probe describing it, so a test
//    can request every GET route and show that no probe's answer changed
//    (test/http/get-side-effects.test.ts). A session's "last seen" time is
//    bookkeeping, not state: probes leave it out.
import type { FastifyInstance, FastifyRequest } from 'fastify';

export const SAFE_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS']);

export class StateChangeOnSafeRequest extends Error {
  constructor(method: string, what: string) {
    super(`${what} refused during a ${method} request: GET, HEAD and OPTIONS never change state`);
    this.name = 'StateChangeOnSafeRequest';
  }
}

/** Throws unless the request's method may change state (POST, PUT, PATCH, DELETE). */
export function assertMayChangeState(request: Pick<FastifyRequest, 'method'>, what: string): void {
  if (SAFE_METHODS.has(request.method)) throw new StateChangeOnSafeRequest(request.method, what);
}

/** Describes one holder's state as JSON-comparable data (for tests; never served). */
export type StateProbe = () => Promise<unknown>;

export class StateProbes {
  readonly #probes = new Map<string, StateProbe>();
  add(name: string, probe: StateProbe): void {
    if (this.#probes.has(name)) throw new Error(`a state probe named ${name} is already registered`);
    this.#probes.set(name, probe);
  }
  /** Every probe's answer, by name. */
  async snapshot(): Promise<Record<string, unknown>> {
    const out: Record<string, unknown> = {};
    for (const [name, probe] of this.#probes) out[name] = await probe();
    return out;
  }
}

export interface RouteEntry {
  readonly method: string;
  readonly url: string;
}

/** Every route the app registers, as fastify sees it (for the GET side-effect test to enumerate). */
export function recordRoutes(app: FastifyInstance): RouteEntry[] {
  const routes: RouteEntry[] = [];
  app.addHook('onRoute', (route) => {
    for (const method of [route.method].flat()) routes.push({ method, url: route.url ?? route.path });
  });
  return routes;
}
