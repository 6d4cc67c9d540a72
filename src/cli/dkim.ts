// `sealrelay dkim keygen`: make a DKIM signing key and show the DNS record that
// publishes it. The private key goes to a new file with mode 0600 (an existing file
// is never overwritten: it may be the key a published record still points at), or
// to stdout when no --out is given; the record then goes to stderr, so that
// `sealrelay dkim keygen example.org > key.pem` leaves only the key in the file.
// The relay signs with it once dkim.domains.<domain> names the file and selector.
import { writeFileSync } from 'node:fs';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { DEFAULT_RSA_BITS, dkimKeygen } from '../crypto/dkim.ts';
import type { CliContext } from './context.ts';
import { CliError, EXIT } from './exit.ts';

const DEFAULT_SELECTOR = 'sealrelay';
/** RFC 1035 §3.3: a TXT character-string holds at most 255 octets. */
const TXT_STRING_MAX = 255;

interface KeygenOptions {
  selector: string;
  type: 'rsa' | 'ed25519';
  bits?: number;
  out?: string;
}

export function registerDkimCommands(program: Command, _context: () => CliContext): void {
  const dkim = program.command('dkim').description('DKIM signing keys for sender domains (dkim.domains)');

  dkim
    .command('keygen <domain>')
    .description('make a signing key; print the DNS TXT record to publish')
    .option('--selector <selector>', 'the key\'s selector (s=)', DEFAULT_SELECTOR)
    .addOption(new Option('--type <type>', 'key type').choices(['rsa', 'ed25519']).default('rsa'))
    .option('--bits <bits>', `RSA key size (default ${DEFAULT_RSA_BITS})`, parseBits)
    .option('--out <file>', 'write the private key to this new file (mode 0600) instead of stdout')
    .action((domain: string, opts: KeygenOptions) => {
      let made: ReturnType<typeof dkimKeygen>;
      try {
        made = dkimKeygen(domain, { selector: opts.selector, type: opts.type, ...(opts.bits !== undefined ? { bits: opts.bits } : {}) });
      } catch (err) {
        throw new CliError(EXIT.USAGE, (err as Error).message);
      }
      const record = zoneLine(made.dnsName, made.dnsTxt);
      if (opts.out === undefined) {
        process.stdout.write(made.privateKeyPem);
        console.error(`publish in DNS:\n${record}`);
        return;
      }
      try {
        // "wx": create only; fails with EEXIST rather than replace a key in use.
        writeFileSync(opts.out, made.privateKeyPem, { mode: 0o600, flag: 'wx' });
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        throw new CliError(EXIT.FAILURE, code === 'EEXIST' ? `${opts.out} exists; not overwritten` : `cannot write ${opts.out}: ${(err as Error).message}`);
      }
      console.log(`wrote the private key to ${opts.out} (mode 0600)`);
      console.log(`publish in DNS:\n${record}`);
    });
}

function parseBits(value: string): number {
  if (!/^\d+$/.test(value)) throw new InvalidArgumentError('expected a whole number of bits.');
  return Number(value);
}

/** A zone-file line for the record, its text split into strings of at most 255 characters. */
function zoneLine(name: string, text: string): string {
  const strings: string[] = [];
  for (let at = 0; at < text.length; at += TXT_STRING_MAX) strings.push(`"${text.slice(at, at + TXT_STRING_MAX)}"`);
  return `${name}. IN TXT ${strings.join(' ')}`;
}
