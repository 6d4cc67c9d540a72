// Reading README.md and docs/*.md as a test reads them: the fenced blocks that an
// HTML comment marks (`<!-- config-example -->`, `<!-- first-delivery: relay -->`),
// so a test runs exactly what the page shows, and the page's links.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** README.md and every Markdown file in docs/, as paths relative to the repository root. */
export function documentationFiles(): string[] {
  return ['README.md', ...readdirSync(join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).sort().map((f) => `docs/${f}`)];
}

export function readDoc(file: string): string {
  return readFileSync(join(ROOT, file), 'utf8');
}

export interface Block {
  readonly file: string;
  /** 1-based line of the opening fence. */
  readonly line: number;
  readonly lang: string;
  /** The block's text, its fence's indentation removed. */
  readonly text: string;
}

/** The fenced blocks each directly after a line `<!-- marker -->`; a marker without a block under it throws. */
export function markedBlocks(file: string, marker: string): Block[] {
  const lines = readDoc(file).split('\n');
  const blocks: Block[] = [];
  lines.forEach((line, i) => {
    if (line.trim() !== `<!-- ${marker} -->`) return;
    const fence = /^(\s*)(`{3,})(\S*)\s*$/.exec(lines[i + 1] ?? '');
    if (!fence) throw new Error(`${file}:${i + 1}: <!-- ${marker} --> is not followed by a fenced block`);
    const [, indent = '', ticks = '', lang = ''] = fence;
    const body: string[] = [];
    let j = i + 2;
    for (; j < lines.length && lines[j]?.trim() !== ticks; j++) body.push((lines[j] ?? '').startsWith(indent) ? (lines[j] ?? '').slice(indent.length) : (lines[j] ?? ''));
    if (j >= lines.length) throw new Error(`${file}:${i + 2}: the block after <!-- ${marker} --> is never closed`);
    blocks.push({ file, line: i + 2, lang, text: `${body.join('\n')}\n` });
  });
  return blocks;
}

/** The one block under a marker (exactly one is expected). */
export function markedBlock(file: string, marker: string): Block {
  const blocks = markedBlocks(file, marker);
  if (blocks.length !== 1) throw new Error(`${file}: expected one block marked <!-- ${marker} -->, found ${blocks.length}`);
  return blocks[0] as Block;
}

/** The file's lines, those inside fenced code blocks (and the fences) left empty. */
function outsideFences(text: string): string[] {
  let fence: string | null = null;
  return text.split('\n').map((line) => {
    const m = /^\s*(`{3,}|~{3,})/.exec(line);
    if (fence !== null) {
      if (m && m[1]?.[0] === fence[0] && (m[1]?.length ?? 0) >= fence.length) fence = null;
      return '';
    }
    if (m) {
      fence = m[1] ?? '```';
      return '';
    }
    return line;
  });
}

/** The text outside fenced blocks, inline code spans blanked: what a Markdown renderer may turn into links. */
export function prose(text: string): string {
  return outsideFences(text)
    .map((line) => line.replace(/(`+)[\s\S]*?\1/g, (s) => ' '.repeat(s.length)))
    .join('\n');
}

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens. */
export function headingAnchor(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/ /g, '-');
}

/** The anchors of a Markdown file's headings (outside code blocks), with GitHub's -1, -2 for repeats. */
export function anchorsOf(text: string): Set<string> {
  const seen = new Map<string, number>();
  const anchors = new Set<string>();
  for (const line of outsideFences(text)) {
    const m = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (!m) continue;
    const base = headingAnchor(m[1] ?? '');
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    anchors.add(n === 0 ? base : `${base}-${n}`);
  }
  return anchors;
}
