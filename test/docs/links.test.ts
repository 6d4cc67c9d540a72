// README.md and docs/*.md link only inside the repository (the README is read
// offline, from a checkout or /opt/sealrelay), and every relative link reaches a
// file that exists — and, for a link to a heading, that heading.
import { existsSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { anchorsOf, documentationFiles, prose, readDoc, ROOT } from './markdown.ts';

interface Link {
  readonly file: string;
  readonly line: number;
  readonly target: string;
}

/** Every link a Markdown renderer would make from the prose (code blocks and code spans are not links). */
function linksOf(file: string, text = readDoc(file)): { links: Link[]; external: Link[] } {
  const links: Link[] = [];
  const external: Link[] = [];
  prose(text)
    .split('\n')
    .forEach((text, i) => {
      const line = i + 1;
      for (const m of text.matchAll(/\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) links.push({ file, line, target: m[1] ?? '' });
      for (const m of text.matchAll(/^\s*\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)/g)) links.push({ file, line, target: m[1] ?? '' });
      // Autolinks and bare addresses, which GitHub's renderer links by itself.
      for (const m of text.matchAll(/<((?:[a-z][a-z0-9+.-]*:)[^>\s]+)>|\b(?:https?|ftp):\/\/[^\s)>\]]+|\bwww\.[a-z0-9-]+\.[^\s)>\]]+|\bmailto:[^\s)>\]]+/gi)) {
        external.push({ file, line, target: m[1] ?? m[0] });
      }
    });
  for (const link of links) if (/^[a-z][a-z0-9+.-]*:/i.test(link.target) || link.target.startsWith('//')) external.push(link);
  return { links: links.filter((l) => !external.includes(l)), external };
}

/** Why a relative link does not resolve, or null when it does. */
function brokenBecause(link: Link): string | null {
  const [pathPart = '', anchor] = link.target.split('#', 2);
  const target = pathPart === '' ? join(ROOT, link.file) : resolve(dirname(join(ROOT, link.file)), decodeURIComponent(pathPart));
  if (relative(ROOT, target).startsWith('..')) return 'points outside the repository';
  if (!existsSync(target)) return 'no such file';
  if (anchor !== undefined && target.endsWith('.md')) {
    if (!anchorsOf(readDoc(relative(ROOT, target))).has(anchor)) return `no heading with the anchor #${anchor}`;
  }
  return null;
}

const files = documentationFiles();

describe('links in README.md and docs/', () => {
  it('finds the pages and their links (the checks below look at something)', () => {
    expect(files).toContain('README.md');
    expect(files).toContain('docs/benchmarks.md');
    const readme = linksOf('README.md').links;
    expect(readme.length).toBeGreaterThan(20);
    expect(readme.map((l) => l.target)).toContain('docs/benchmarks.md');
  });

  it.each(files)('%s links to nothing outside the repository', (file) => {
    const { external } = linksOf(file);
    expect(external.map((l) => `${l.file}:${l.line}: ${l.target}`)).toEqual([]);
  });

  it.each(files)('every relative link in %s resolves to a file (and heading) in the repository', (file) => {
    const broken = linksOf(file)
      .links.map((l) => ({ l, why: brokenBecause(l) }))
      .filter((b) => b.why !== null)
      .map(({ l, why }) => `${l.file}:${l.line}: ${l.target}: ${why}`);
    expect(broken).toEqual([]);
  });

  it('the checks catch what they are for', () => {
    const link = (target: string): Link => ({ file: 'README.md', line: 1, target });
    expect(brokenBecause(link('docs/no-such-page.md'))).toBe('no such file');
    expect(brokenBecause(link('docs/benchmarks.md#no-such-heading'))).toMatch(/no heading/);
    expect(brokenBecause(link('../outside.md'))).toBe('points outside the repository');
    expect(brokenBecause(link('#quick-start'))).toBeNull();
    expect(brokenBecause(link('docs/portal.md#secure-portal'))).toBeNull();
    const found = (text: string) => linksOf('x.md', text);
    expect(found('see https://example.org/page.').external.map((l) => l.target)).toEqual(['https://example.org/page.']);
    expect(new Set(found('[site](http://example.org) and <https://example.org>').external.map((l) => l.target))).toEqual(new Set(['http://example.org', 'https://example.org']));
    expect(new Set(found('[mail](mailto:a@example.org), www.example.org').external.map((l) => l.target))).toEqual(new Set(['mailto:a@example.org', 'www.example.org']));
    expect(found('`https://example.org` in code\n```\nhttps://example.org\n```').external).toEqual([]);
    expect(found('[ok](docs/api.md#tokens)').links.map((l) => l.target)).toEqual(['docs/api.md#tokens']);
  });
});
