// DLP scan of one large message: a 20 MB multipart mail (a quoted-printable
// text part, an HTML part, base64 CSV/JSON attachments and base64 binary ones)
// with prose full of near-misses (phone numbers, order ids, appointment dates,
// product codes) and a few planted hits. The message is generated here, then
// scanned in a child process of its own so that its peak RSS (VmHWM) is the
// scanner's plus the 20 MB message, not the generator's. Reports the scan time
// (median of 5, after one warm-up), MB/s of raw message, the peak RSS and the
// longest event-loop stall during a scan, and writes
// bench/results/dlp-<ISO>.json. Standalone, never a timed test:
//
//   node --import tsx bench/dlp.ts [--mb 20] [--runs 5] [--out DIR]
import { fileStamp } from './run-files.ts';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { buildDetectors } from '../src/policy/dlp/detectors.ts';
import { scanMessage, type DlpHit } from '../src/policy/dlp/scan.ts';
import { machineInfo } from './machine.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const CRLF = '\r\n';
const BOUNDARY = '=_dlp_bench_41c9';
const MB = 1024 * 1024;

const { values: args } = parseArgs({
  options: {
    mb: { type: 'string', default: '20' },
    runs: { type: 'string', default: '5' },
    out: { type: 'string', default: join(ROOT, 'bench', 'results') },
    child: { type: 'string' }, // internal: scan this file and print the figures as JSON
  },
});

// A fixed seed: every run scans the same message.
let seed = 20_251_124;
const random = (): number => (seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31;
const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)]!;
const digits = (n: number): string => Array.from({ length: n }, () => Math.floor(random() * 10)).join('');

const WORDS = ['the', 'patient', 'appointment', 'clinic', 'results', 'please', 'call', 'invoice', 'order', 'report', 'lab', 'dear', 'kind', 'regards', 'follow-up', 'insurance', 'room', 'floor', 'model', 'version'];
// Near-misses that no detector may count.
const DECOYS = [
  () => `call ${digits(3)}-${digits(3)}-${digits(4)}`, // a phone number, not an SSN
  () => `order ${digits(9)}`, // nine digits without an SSN keyword
  () => `ref ${digits(12)}`,
  () => `on 0${1 + Math.floor(random() * 9)}/1${Math.floor(random() * 9)}/2025`, // a date without a birth keyword
  () => `seat ${pick(['A', 'B', 'C'])}${digits(2)}`, // an ICD-like category without a keyword
  () => `SKU-E${digits(2)}.${digits(1)}`,
  () => `tracking 1Z${digits(16)}`,
  () => `v${digits(1)}.${digits(2)}.${digits(1)}`,
];
const PLANTED = ['SSN 078-05-1120', 'card 4111 1111 1111 1111', 'MRN: 12345678', 'diagnosis E11.9', 'DOB: 03/14/1975'];

function prose(bytes: number, plantEvery: number): string {
  const lines: string[] = [];
  let size = 0;
  while (size < bytes) {
    const words = Array.from({ length: 12 }, () => (random() < 0.15 ? pick(DECOYS)() : pick(WORDS)));
    const line = `${words.join(' ')}${(lines.length + 1) % plantEvery === 0 ? ` ${pick(PLANTED)}` : ''}.`;
    lines.push(line);
    size += line.length + 2;
  }
  return lines.join(CRLF);
}

const base64Lines = (buf: Buffer): string => buf.toString('base64').replace(/(.{76})/g, `$1${CRLF}`);
const quotedPrintable = (text: string): string => text.replace(/=/g, '=3D').replace(/(.{72})(?=.)/g, `$1=${CRLF}`);
const part = (headers: string[], body: string): string => [`--${BOUNDARY}`, ...headers, '', body].join(CRLF);
const attachment = (type: string, name: string): string[] => [`Content-Type: ${type}; name="${name}"`, `Content-Disposition: attachment; filename="${name}"`, 'Content-Transfer-Encoding: base64'];

/** About `bytes` of message: by encoded size 4/20 QP text, 3/20 HTML, 7/20 text attachments, 6/20 binary ones. */
function buildMessage(bytes: number): Buffer {
  const share = bytes / 20;
  const html = prose(3 * share * 0.6, 4000)
    .split(CRLF)
    .map((line) => `<p><span>${line.replace(/ /g, '&nbsp;')}</span></p>`)
    .join(CRLF);
  const binary = Buffer.alloc(Math.floor(3 * share * 0.74));
  for (let i = 0; i < binary.length; i++) binary[i] = Math.floor(random() * 256);
  const parts = [
    part(['Content-Type: text/plain; charset=utf-8', 'Content-Transfer-Encoding: quoted-printable'], quotedPrintable(prose(4 * share * 0.95, 4000))),
    part(['Content-Type: text/html; charset=utf-8'], `<html><body>${html}</body></html>`),
    part(attachment('text/csv', 'export.csv'), base64Lines(Buffer.from(prose(4 * share * 0.74, 5000)))),
    part(attachment('application/json', 'export.json'), base64Lines(Buffer.from(JSON.stringify(prose(3 * share * 0.74, 5000).split(CRLF))))),
    part(attachment('application/pdf', 'scan-1.pdf'), base64Lines(binary)),
    part(attachment('application/octet-stream', 'scan-2.bin'), base64Lines(binary)),
  ];
  const head = ['From: lab@clinic.example', 'To: someone@example.org', 'Subject: monthly export', 'MIME-Version: 1.0', `Content-Type: multipart/mixed; boundary="${BOUNDARY}"`, '', 'preamble'];
  return Buffer.from([...head, ...parts, `--${BOUNDARY}--`, ''].join(CRLF));
}

interface ChildFigures {
  runsMs: number[];
  truncated: boolean;
  hits: readonly DlpHit[];
  rssAfterLoadBytes: number;
  peakRssBytes: number;
  maxEventLoopDelayMs: number;
}

/** In the child: scan the file `runs` times after a warm-up. */
async function scanFile(file: string, runs: number): Promise<ChildFigures> {
  const raw = readFileSync(file);
  const detectors = buildDetectors();
  const options = { maxBytes: 64 * MB, maxMs: 120_000 };
  const rssAfterLoadBytes = process.memoryUsage().rss;
  await scanMessage(raw, detectors, options); // warm-up: JIT and regex compilation
  const delay = monitorEventLoopDelay({ resolution: 1 });
  delay.enable();
  const runsMs: number[] = [];
  let last = await scanMessage(raw, detectors, options);
  runsMs.push(last.ms);
  for (let i = 1; i < runs; i++) {
    last = await scanMessage(raw, detectors, options);
    runsMs.push(last.ms);
  }
  delay.disable();
  return {
    runsMs,
    truncated: last.truncated,
    hits: last.hits,
    rssAfterLoadBytes,
    peakRssBytes: process.resourceUsage().maxRSS * 1024,
    maxEventLoopDelayMs: delay.max / 1e6,
  };
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main(): Promise<void> {
  const runs = Number(args.runs);
  if (args.child) {
    process.stdout.write(JSON.stringify(await scanFile(args.child, runs)));
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'sealrelay-dlp-bench-'));
  try {
    const raw = buildMessage(Number(args.mb) * MB);
    const file = join(dir, 'message.eml');
    writeFileSync(file, raw);
    console.error(`scanning a ${(raw.length / MB).toFixed(1)} MB message ${runs} times in a child process…`);
    const script = fileURLToPath(import.meta.url);
    const output = execFileSync(process.execPath, ['--import', 'tsx', script, '--child', file, '--runs', String(runs)], { cwd: ROOT, encoding: 'utf8', maxBuffer: 16 * MB });
    const child = JSON.parse(output) as ChildFigures;
    const medianMs = median(child.runsMs);
    const startedAt = new Date();
    const results = {
      scenario: 'dlp',
      startedAt: startedAt.toISOString(),
      machine: machineInfo(ROOT),
      message: { bytes: raw.length, mb: raw.length / MB },
      ...child,
      medianMs,
      mbPerSec: raw.length / MB / (medianMs / 1000),
    };
    mkdirSync(args.out, { recursive: true });
    const out = join(args.out, `dlp-${fileStamp(startedAt)}.json`);
    writeFileSync(out, `${JSON.stringify(results, null, 2)}\n`);
    console.log(`DLP scan of a ${results.message.mb.toFixed(1)} MB message: median ${medianMs.toFixed(1)} ms of ${runs} (runs ${child.runsMs.map((ms) => ms.toFixed(0)).join(', ')} ms), ${results.mbPerSec.toFixed(1)} MB/s`);
    console.log(`memory: peak RSS ${(child.peakRssBytes / MB).toFixed(0)} MB (after loading the message ${(child.rssAfterLoadBytes / MB).toFixed(0)} MB); longest event-loop stall ${child.maxEventLoopDelayMs.toFixed(1)} ms`);
    console.log(`truncated: ${child.truncated}; hits: ${child.hits.map((h) => `${h.part}:${h.detector}=${h.count}`).join(' ')}`);
    console.log(`results: ${out}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
