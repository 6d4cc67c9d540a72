// `sealrelay evidence`: signed evidence of how a message travelled, per recipient
// (events/evidence.ts), for an auditor who trusts the relay's published key and
// nothing else.
//
//   evidence [show] REF [--format json|html] [--out FILE]
//                          REF is a queue id or Message-ID; the document is built from
//                          the delivery log and signed with evidence.signing_key_file;
//                          to stdout, or to a new file (mode 0600: it names recipients)
//   evidence verify FILE --key PUBFILE
//                          exit 0: signed by that key and unchanged (JSON or HTML);
//                          exit 1: not, with the reason. The key is never taken from FILE
//   evidence keygen --out FILE
//                          a new Ed25519 key (PKCS#8 PEM, mode 0600, never overwrites);
//                          prints the public key to publish
//   evidence pubkey        the public key of evidence.signing_key_file (PEM on stdout,
//                          its key id on stderr), to publish
//
// The private key is read only from the file the config names, its mode checked,
// and never printed.
import { readFileSync, writeFileSync } from 'node:fs';
import { InvalidArgumentError, type Command } from 'commander';
import type { Config } from '../config/schema.ts';
import { buildEvidence, claimedKeyId, formatSignedEvidence, signEvidence } from '../events/evidence.ts';
import { renderEvidenceHtml, verifyEvidenceDocument, extractEmbeddedEvidence } from '../events/evidence-html.ts';
import { EvidenceKeyError, generateEvidenceKey, loadEvidencePublicKey, loadEvidenceSigningKey, publicKeyText } from '../events/evidence-key.ts';
import { readConfig, withStore, type CliContext } from './context.ts';
import { auditCommand } from './operator.ts';
import { CliError, EXIT } from './exit.ts';

type Format = 'json' | 'html';
const FORMATS: readonly Format[] = ['json', 'html'];

export function registerEvidenceCommands(program: Command, context: () => CliContext): void {
  const evidence = program.command('evidence').description('signed evidence of how a message travelled, per recipient; verify, keygen, pubkey');

  // The default subcommand, so that `evidence REF` works and each subcommand keeps its own --out.
  evidence
    .command('show', { isDefault: true })
    .description('the signed evidence for a message (queue id or Message-ID): `sealrelay evidence REF` for short')
    .argument('<ref>', 'queue id or Message-ID')
    .option('--format <format>', 'json (default) or html (printable; carries the signed JSON)', parseFormat, 'json' as Format)
    .option('--out <file>', 'write to this new file (mode 0600) instead of stdout')
    .action(async (ref: string, opts: { format: Format; out?: string }) => {
      const config = readConfig(context());
      const key = signingKey(config);
      const records = await withStore(config, async (store) => {
        const found = await store.queryLog({ message: ref });
        if (found.length) await auditCommand(store, 'evidence.read', ref, `${found.length} records`);
        return found;
      });
      if (!records.length) throw new CliError(EXIT.FAILURE, `no delivery records for ${ref}`);
      const signed = signEvidence(buildEvidence({ relay: config.server.hostname, reference: ref, records }), key);
      const text = opts.format === 'html' ? renderEvidenceHtml(signed) : formatSignedEvidence(signed);
      if (opts.out === undefined) {
        process.stdout.write(text);
        return;
      }
      writeNewFile(opts.out, text, 0o600);
      console.log(`wrote ${opts.format} evidence for ${ref} to ${opts.out} (signed by ${signed.signature.keyId})`);
    });

  evidence
    .command('verify')
    .description("check a signed evidence file (JSON or HTML) against the relay's published public key")
    .argument('<file>', 'the evidence file')
    .option('--key <pubfile>', "the relay's published public key (PEM); never taken from the file")
    .action((file: string, opts: { key?: string }) => {
      let text: string;
      try {
        text = readFileSync(file, 'utf8');
      } catch (err) {
        throw new CliError(EXIT.FAILURE, `cannot read ${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`);
      }
      if (opts.key === undefined) {
        const claimed = claimedKeyId(extractEmbeddedEvidence(text) ?? text);
        throw new CliError(
          EXIT.USAGE,
          `give the relay's published public key: --key PUBFILE. ${claimed ? `This file says it was signed by key ${claimed}; compare that with the published key id — ` : ''}a key that comes with the file proves nothing.`,
        );
      }
      const publicKey = keyOrFail(() => loadEvidencePublicKey(opts.key!));
      const result = verifyEvidenceDocument(text, publicKey);
      if (!result.valid) throw new CliError(EXIT.FAILURE, `${file}: INVALID: ${result.reason}`);
      const recipients = result.payload.messages.reduce((n, m) => n + m.recipients.length, 0);
      console.log(`${file}: valid ${result.form} evidence, signed by ${result.keyId}`);
      console.log(`relay ${result.payload.relay}, generated ${result.payload.generatedAt}, for ${result.payload.reference}: ${result.payload.messages.length} message(s), ${recipients} recipient(s)`);
    });

  evidence
    .command('keygen')
    .description('make the relay\'s evidence signing key (Ed25519, PKCS#8 PEM, mode 0600); see evidence.signing_key_file')
    .requiredOption('--out <file>', 'the new private key file (never overwritten)')
    .action((opts: { out: string }) => {
      const publicKey = keyOrFail(() => generateEvidenceKey(opts.out));
      const { pem, keyId } = publicKeyText(publicKey);
      console.log(`wrote an evidence signing key to ${opts.out} (mode 0600); keep it out of the repository and set:`);
      console.log(`  evidence:\n    signing_key_file: ${opts.out}`);
      console.log(`publish this public key (key id ${keyId}) so auditors can verify evidence:`);
      process.stdout.write(pem);
    });

  evidence
    .command('pubkey')
    .description('print the public key of evidence.signing_key_file (PEM on stdout, key id on stderr), to publish')
    .action(() => {
      const { pem, keyId } = publicKeyText(signingKey(readConfig(context())));
      process.stdout.write(pem);
      console.error(`key id ${keyId}`);
    });
}

function signingKey(config: Config) {
  const file = config.evidence.signing_key_file;
  if (file === null) throw new CliError(EXIT.CONFIG, 'evidence.signing_key_file is not set (sealrelay evidence keygen --out FILE makes a key)');
  return keyOrFail(() => loadEvidenceSigningKey(file), EXIT.CONFIG);
}

function keyOrFail<T>(load: () => T, exitCode: typeof EXIT.FAILURE | typeof EXIT.CONFIG = EXIT.FAILURE): T {
  try {
    return load();
  } catch (err) {
    if (err instanceof EvidenceKeyError) throw new CliError(exitCode, err.message);
    throw err;
  }
}

function writeNewFile(file: string, text: string, mode: number): void {
  try {
    writeFileSync(file, text, { mode, flag: 'wx' });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new CliError(EXIT.FAILURE, code === 'EEXIST' ? `${file} exists; not overwritten` : `cannot write ${file}: ${(err as Error).message}`);
  }
}

function parseFormat(value: string): Format {
  if (!(FORMATS as readonly string[]).includes(value)) throw new InvalidArgumentError(`expected one of ${FORMATS.join(', ')}.`);
  return value as Format;
}
