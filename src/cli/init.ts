// `sealrelay init DIR --hostname NAME`: a new install's files, ready for `config
// check` and `start` — the commented configuration (the embedded default with this
// install's values set, its comments kept), and the keys it names, each made here
// and written once, mode 0600, in DIR/keys (mode 0700): the key queued bodies are
// encrypted with at rest, the portal master key, the evidence signing key and, with
// --dkim-domain, a DKIM key whose DNS record is printed. Nothing is ever overwritten: an existing config stops it before
// anything is written. The submission certificate is left to the first start (a
// development pair) or to the operator (a real one): init cannot know it.
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { parseDocument } from 'yaml';
import { dkimKeygen } from '../crypto/dkim.ts';
import { generateEvidenceKey, publicKeyText } from '../events/evidence-key.ts';
import { formatMasterKey, generateMasterKey } from '../portal/master-keys.ts';
import { CliError, EXIT } from './exit.ts';

/** The embedded default configuration, with its comments: the template of every new install. */
const TEMPLATE = new URL('../../config/sealrelay.yaml', import.meta.url);
const DKIM_SELECTOR = 'sealrelay';

export function registerInit(program: Command): void {
  program
    .command('init <dir>')
    .description('write a commented config and new keys (queue encryption, portal master key, evidence key, optional DKIM key) for a new install; never overwrites')
    .requiredOption('--hostname <name>', "this relay's name (SMTP banner, Received, bounces), e.g. relay.clinic.example")
    .option('--dkim-domain <domain>', 'also make a DKIM key for this sender domain and print its DNS record')
    .action((dir: string, opts: { hostname: string; dkimDomain?: string }) => {
      if (!/^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$/.test(opts.hostname) || !opts.hostname.includes('.')) {
        throw new CliError(EXIT.USAGE, `--hostname takes a fully qualified host name, not "${opts.hostname}"`);
      }
      const done = initInstall(resolve(dir), opts.hostname, opts.dkimDomain ?? null);
      console.log(nextSteps(done));
    });
}

interface Written {
  readonly dir: string;
  readonly configFile: string;
  readonly evidenceKeyId: string;
  readonly dkim: { domain: string; dnsName: string; dnsTxt: string } | null;
}

function initInstall(dir: string, hostname: string, dkimDomain: string | null): Written {
  const configFile = join(dir, 'sealrelay.yaml');
  if (existsSync(configFile)) throw new CliError(EXIT.FAILURE, `${configFile} exists; init never overwrites (edit it, or init another directory)`);
  // Made first, so that a bad domain stops init before anything is written.
  let dkim: ReturnType<typeof dkimKeygen> | null = null;
  try {
    dkim = dkimDomain === null ? null : dkimKeygen(dkimDomain, { selector: DKIM_SELECTOR, type: 'rsa' });
  } catch (err) {
    throw new CliError(EXIT.USAGE, `--dkim-domain: ${(err as Error).message}`);
  }
  mkdirSync(join(dir, 'keys'), { recursive: true, mode: 0o700 });
  chmodSync(join(dir, 'keys'), 0o700);

  const masterId = `k${new Date().toISOString().slice(0, 10).replaceAll('-', '')}`;
  writeNew(join(dir, 'keys', `portal-${masterId}.key`), formatMasterKey(generateMasterKey()));
  writeNew(join(dir, 'keys', `queue-${masterId}.key`), formatMasterKey(generateMasterKey()));
  const evidenceKeyId = publicKeyText(generateEvidenceKey(join(dir, 'keys', 'evidence.key'))).keyId;
  const dkimKeyFile = dkimDomain ? `keys/dkim-${dkimDomain.toLowerCase()}.key` : null;
  if (dkim && dkimKeyFile) writeNew(join(dir, dkimKeyFile), dkim.privateKeyPem);

  const doc = parseDocument(readFileSync(TEMPLATE, 'utf8'));
  doc.commentBefore = ` SealRelay configuration, written by \`sealrelay init\` on ${new Date().toISOString().slice(0, 10)}.\n Check it with: sealrelay -c ${configFile} config check\n Relative paths are relative to this file's directory.`;
  doc.setIn(['server', 'hostname'], hostname);
  doc.setIn(['store', 'path'], 'data/sealrelay.db');
  doc.setIn(['store', 'encryption'], doc.createNode({ keys: [{ id: masterId, file: `keys/queue-${masterId}.key` }], current_key: masterId }, { flow: true }));
  doc.setIn(['ingress', 'users_file'], 'users.yaml');
  doc.setIn(['ingress', 'cert_file'], 'certs/sealrelay-dev.crt');
  doc.setIn(['ingress', 'key_file'], 'certs/sealrelay-dev.key');
  doc.setIn(['portal', 'master_keys'], doc.createNode([{ id: masterId, file: `keys/portal-${masterId}.key` }], { flow: true }));
  doc.setIn(['portal', 'current_key'], masterId);
  doc.setIn(['evidence', 'signing_key_file'], 'keys/evidence.key');
  if (dkimDomain && dkimKeyFile) doc.setIn(['dkim', 'domains'], doc.createNode({ [dkimDomain.toLowerCase()]: { selector: DKIM_SELECTOR, key_file: dkimKeyFile } }, { flow: true }));
  writeNew(join(dir, 'users.yaml'), '# Submission accounts: add them with `sealrelay user add NAME` (only scrypt hashes are kept here).\nusers: {}\n');
  writeNew(configFile, doc.toString({ lineWidth: 0 }), 0o640);
  return { dir, configFile, evidenceKeyId, dkim: dkim && dkimDomain ? { domain: dkimDomain, dnsName: dkim.dnsName, dnsTxt: dkim.dnsTxt } : null };
}

function writeNew(file: string, text: string, mode = 0o600): void {
  try {
    writeFileSync(file, text, { mode, flag: 'wx' });
  } catch (err) {
    throw new CliError(EXIT.FAILURE, `cannot write ${file}: ${(err as Error).message}`);
  }
}

function nextSteps(w: Written): string {
  const c = `sealrelay -c ${w.configFile}`;
  const lines = [
    `Wrote ${w.configFile}, ${w.dir}/users.yaml and keys in ${w.dir}/keys (mode 0600; back them up apart from the store: without them, queued mail and portal items cannot be read).`,
    '',
    'Next:',
    `  1. ${c} config check`,
    `  2. ${c} user add app1            # an account for your application (password on stdin)`,
    '  3. a real certificate for submission: set ingress.cert_file / key_file (until then a development one is made at the first start)',
  ];
  if (w.dkim) lines.push(`  4. publish the DKIM key:  ${w.dkim.dnsName}. IN TXT "${w.dkim.dnsTxt}"`);
  lines.push(`  ${w.dkim ? 5 : 4}. publish the evidence public key (${w.evidenceKeyId}) for auditors:  ${c} evidence pubkey`);
  lines.push(`  ${w.dkim ? 6 : 5}. ${c} start                 # then: ${c} status`);
  return lines.join('\n');
}
