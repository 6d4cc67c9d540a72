// The format of a rule's recipient_domains_file: one domain (or *.wildcard) per
// line; `#` starts a comment. Read here for the policy and for `config check`, which
// reports a bad entry at its own line.

export interface DomainsFileEntry {
  readonly entry: string;
  /** 1-based line and column of the entry in the file. */
  readonly line: number;
  readonly column: number;
}

export function domainsFileEntries(text: string): DomainsFileEntry[] {
  const entries: DomainsFileEntry[] = [];
  text.split(/\r?\n/).forEach((raw, n) => {
    const entry = raw.replace(/#.*/, '').trim();
    if (entry) entries.push({ entry, line: n + 1, column: raw.indexOf(entry) + 1 });
  });
  return entries;
}
