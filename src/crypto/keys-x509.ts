// S/MIME certificates for the key store: one DER certificate in, one RecipientKey
// out. node-forge reads it, because node-forge is what encrypts to it (and it reads
// RSA keys only); a certificate forge cannot read (EC, Ed25519, RSA-PSS) is read
// with node:crypto instead and stored as unusable, so the operator sees why.
//
// Trust comes from the operator who imports the certificate: chains are not
// verified and revocation (CRL/OCSP) is not checked, so `revoked` is always false.
import { createHash, X509Certificate } from 'node:crypto';
import forge from 'node-forge';
import { normaliseAddress, type RecipientKey } from '../store/store.ts';
import { emailProtectionProblem, keyEnciphermentProblem, weakKeyProblem } from './smime.ts';

/** GeneralName tag of an email address in subjectAltName (RFC 5280 §4.2.1.6). */
const RFC822_NAME = 1;

type Origin = { source: RecipientKey['source']; importedAt: number };

/** Describes one DER certificate; throws when it is not one. */
export function describeCertificate(der: Buffer, origin: Origin): RecipientKey {
  const common = { fingerprint: createHash('sha256').update(der).digest('hex').toUpperCase(), kind: 'smime' as const, data: toPem(der), revoked: false, ...origin };
  let cert: forge.pki.Certificate;
  try {
    cert = forge.pki.certificateFromAsn1(forge.asn1.fromDer(forge.util.createBuffer(der.toString('binary'))));
  } catch (forgeError) {
    return { ...common, ...describeWithNode(der, forgeError as Error) };
  }
  const altNames = (cert.getExtension('subjectAltName') as { altNames?: { type: number; value?: string }[] } | null)?.altNames ?? [];
  const emails = [
    ...altNames.filter((n) => n.type === RFC822_NAME && n.value).map((n) => n.value as string),
    ...cert.subject.attributes.filter((a) => a.name === 'emailAddress').map((a) => String(a.value)),
  ];
  return {
    ...common,
    addresses: addressesOf(emails.map(fromBytes)),
    label: cert.subject.attributes.map((a) => `${a.shortName ?? a.name ?? a.type}=${fromBytes(String(a.value))}`).join(', '),
    createdAt: cert.validity.notBefore.getTime(),
    expiresAt: cert.validity.notAfter.getTime(),
    unusable: whyUnusable(cert),
  };
}

/** The rules encryption applies (smime.ts), as a verdict to store rather than an error. */
function whyUnusable(cert: forge.pki.Certificate): string | null {
  return keyEnciphermentProblem(cert) ?? emailProtectionProblem(cert) ?? weakKeyProblem((cert.publicKey as forge.pki.rsa.PublicKey).n.bitLength());
}

/** What node:crypto can say of a certificate node-forge could not read: it is stored, but cannot be used. */
function describeWithNode(der: Buffer, forgeError: Error): Pick<RecipientKey, 'addresses' | 'label' | 'createdAt' | 'expiresAt' | 'unusable'> {
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(der);
  } catch {
    throw new Error(`not an X.509 certificate: ${forgeError.message}`);
  }
  const subject = x509.subject.split('\n');
  const type = x509.publicKey.asymmetricKeyType ?? 'unknown';
  return {
    addresses: addressesOf([
      ...sanEmails(x509.subjectAltName ?? ''),
      ...subject.filter((rdn) => rdn.startsWith('emailAddress=')).map((rdn) => rdn.slice('emailAddress='.length)),
    ]),
    label: subject.join(', '),
    createdAt: Date.parse(x509.validFrom),
    expiresAt: Date.parse(x509.validTo),
    unusable:
      type === 'ec'
        ? 'EC keys are not supported by node-forge for S/MIME encryption'
        : `${type} keys are not supported for S/MIME encryption (node-forge: ${forgeError.message})`,
  };
}

/** The email entries of node's subjectAltName text: `email:a@b, DNS:x, email:"quoted, value"`. */
function sanEmails(text: string): string[] {
  return [...text.matchAll(/(?:^|, )email:("(?:[^"\\]|\\.)*"|[^,]*)/g)].map(([, value = '']) =>
    // Node quotes values with special characters as JSON strings, escaping each byte above 0x7e.
    value.startsWith('"') ? fromBytes(JSON.parse(value) as string) : value,
  );
}

function addressesOf(emails: readonly string[]): string[] {
  return [...new Set(emails.map(normaliseAddress).filter((a): a is string => a !== null))];
}

/** ASN.1 strings arrive as one character per byte; UTF-8 among them is decoded, anything else kept as is. */
function fromBytes(text: string): string {
  if (!/[\u0080-\uffff]/.test(text) || /[\u0100-\uffff]/.test(text)) return text;
  const decoded = Buffer.from(text, 'latin1').toString('utf8');
  return decoded.includes('\uFFFD') ? text : decoded;
}

function toPem(der: Buffer): string {
  const lines = der.toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN CERTIFICATE-----\n${lines.join('\n')}\n-----END CERTIFICATE-----\n`;
}
