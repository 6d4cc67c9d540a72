// `sealrelay policy explain` as a real process, with a rule whose header regex
// JavaScript's engine would backtrack on for hours ((a+)+$ against "aaa…a!"): the
// answer comes at once, because operators' patterns run on RE2. No timing: with
// the native engine the command would not end before the harness gives up.
import { afterAll, describe, expect, it } from 'vitest';
import { makeSandbox, runCli } from '../cli/harness.ts';

const box = makeSandbox(`policies:
  rules:
    - name: tagged
      match: { header: { name: X-Tag, regex: "(a+)+$" } }
      mode: forced
`);
afterAll(() => box.cleanup());

const explain = (tag: string) => runCli(['--config', box.configFile, 'policy', 'explain', '--from', 'app@clinic.example', '--to', 'pat@example.org', '--header', `X-Tag: ${tag}`, '--json']);

describe('policy explain with a hostile header', () => {
  it('decides a 40-character "aaa…a!" header against (a+)+$', async () => {
    const res = await explain(`${'a'.repeat(40)}!`);
    expect(res.code, res.stderr).toBe(0);
    expect(JSON.parse(res.stdout.trim()).decision).toMatchObject({ mode: 'opportunistic', rule: 'default' });
  });

  it('the rule still matches what it should', async () => {
    const res = await explain('aaaa');
    expect(res.code, res.stderr).toBe(0);
    expect(JSON.parse(res.stdout.trim()).decision).toMatchObject({ mode: 'forced', rule: 'rule:tagged' });
  });
});
