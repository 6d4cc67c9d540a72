// What leaves the relay differs from what was queued only where policy says so:
// the escalation subject tag is cut from the Subject (the recipient should not see
// "[secure]"), and the internal mode header of authenticated submitters is removed.
// Only the header block is touched; the body's bytes are passed on as they are.
import { headerEnd } from '../mime/header-block.ts';
import type { Policy } from '../policy/decide.ts';

export function prepareForDelivery(message: Buffer, policy: Pick<Policy, 'stripSubjectTag' | 'modeHeader'>): Buffer {
  const tag = policy.stripSubjectTag;
  const header = policy.modeHeader?.toLowerCase() ?? null;
  if (!tag && !header) return message;
  const end = headerEnd(message);
  const head = message.subarray(0, end).toString('latin1');
  // Header fields with their folded continuation lines.
  const fields = head.match(/[^\r\n]+(?:\r?\n[ \t][^\r\n]*)*(?:\r?\n)?/g) ?? [];
  let changed = false;
  const kept: string[] = [];
  for (const field of fields) {
    const name = field.slice(0, field.indexOf(':')).trim().toLowerCase();
    if (header && name === header) {
      changed = true;
      continue;
    }
    if (tag && name === 'subject') {
      const without = removeTag(field, tag);
      if (without !== field) {
        changed = true;
        kept.push(without);
        continue;
      }
    }
    kept.push(field);
  }
  return changed ? Buffer.concat([Buffer.from(kept.join(''), 'latin1'), message.subarray(end)]) : message;
}


function removeTag(field: string, tag: string): string {
  const escaped = tag.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  // The tag and the blanks after it, case-insensitively; "Subject: [secure] Lab" → "Subject: Lab".
  return field
    .replace(new RegExp(`${escaped}[ \\t]*`, 'i'), '')
    .replace(/^(Subject:)[ \t]*/i, '$1 ')
    .replace(/[ \t]+(\r?\n)$/, '$1');
}
