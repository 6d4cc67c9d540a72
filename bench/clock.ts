// clock: one time base for every bench process. Wall-clock epoch milliseconds
// with sub-millisecond resolution (the process's time origin plus the monotonic
// clock), so a "submitted at" taken by the load generator and a "landed at"
// taken by the receiver process can be subtracted.
import { performance } from 'node:perf_hooks';

export function epochMs(): number {
  return performance.timeOrigin + performance.now();
}
