// Which opens and clicks machines made. Heuristics, not proof — what each says:
//
// - A known proxy or scanner by its User-Agent: Gmail's and Yahoo's image proxies
//   (GoogleImageProxy, YahooMailProxy), link checkers and preview fetchers (Safe
//   Links-style scanners, Barracuda, Mimecast, Proofpoint, BingPreview, curl, wget,
//   scripting libraries, anything calling itself a bot, crawler or spider).
//   Gmail's proxy fetches the image when the person opens the message and caches it,
//   so its open is real but seen at most once: it is still marked, as the rates must
//   not count a proxy fetch as a reader.
// - Apple Mail Privacy Protection: Apple's proxy fetches every image as the message
//   reaches the device, whether or not anyone reads it; it sends a bare
//   "Mozilla/5.0" User-Agent and comes within seconds of delivery. Both are marked:
//   that exact User-Agent, and any open within tracking.machine_open_seconds of
//   delivery. (A person who really opens that fast is marked too: rates err low.)
// - A click within tracking.machine_click_seconds of delivery: link scanners click
//   every link as the message arrives; people take longer.
// - No User-Agent at all, or a HEAD request: browsers and mail clients send GETs with one.
//
// Marked events are recorded all the same (`automated: true`); reports leave them out
// of the open and click rates by default.

const MACHINE_AGENTS = [
  /GoogleImageProxy/i,
  /YahooMailProxy/i,
  /ggpht\.com/i,
  /BingPreview/i,
  /Barracuda/i,
  /Mimecast/i,
  /Proofpoint/i,
  /urldefense/i,
  /SafeLinks/i,
  /Symantec|MessageLabs/i,
  /\b(?:bot|crawler|spider|scanner|preview)\b/i,
  /^(?:curl|wget|python-requests|python-urllib|Go-http-client|Java|okhttp|axios|node-fetch|undici|libwww-perl)\b/i,
];

/** Apple Mail Privacy Protection's proxy. */
const APPLE_PROXY_AGENT = 'Mozilla/5.0';

export interface Observation {
  readonly method: string;
  readonly userAgent: string | null;
  /** When it happened and when the message was delivered to the recipient (null: not known), ms since the epoch. */
  readonly at: number;
  readonly deliveredAt: number | null;
}

export interface MachineWindows {
  readonly openSeconds: number;
  readonly clickSeconds: number;
}

/** Why the open or click looks like a machine's; null when it looks like a person's. */
export function machineReason(kind: 'open' | 'click', o: Observation, w: MachineWindows): string | null {
  if (o.method === 'HEAD') return 'HEAD request';
  const agent = o.userAgent?.trim() ?? '';
  if (!agent) return 'no User-Agent';
  if (agent === APPLE_PROXY_AGENT) return 'Apple Mail Privacy Protection proxy';
  if (MACHINE_AGENTS.some((re) => re.test(agent))) return 'known proxy or scanner';
  const window = (kind === 'open' ? w.openSeconds : w.clickSeconds) * 1000;
  if (o.deliveredAt !== null && o.at - o.deliveredAt >= 0 && o.at - o.deliveredAt < window) return `within ${window / 1000}s of delivery`;
  return null;
}
