// RFC 8460 §4.4's report schema (test/fixtures/tlsrpt-report.schema.json), compiled by ajv.
import { readFileSync } from 'node:fs';
import { Ajv } from 'ajv';

const schema = JSON.parse(readFileSync(new URL('../../fixtures/tlsrpt-report.schema.json', import.meta.url), 'utf8')) as object;
export const validateReport = new Ajv({ allErrors: true, strict: false }).compile(schema);
