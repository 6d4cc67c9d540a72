// `npm run openapi`: writes docs/openapi.json, the OpenAPI document of the REST API
// exactly as the api listener serves it at /api/v1/openapi.json (generated from the
// routes' schemas). test/http/api/openapi.test.ts fails while the two differ.
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { servedOpenApiDocument } from '../src/http/api/openapi.ts';

const out = fileURLToPath(new URL('../docs/openapi.json', import.meta.url));
writeFileSync(out, `${JSON.stringify(await servedOpenApiDocument(), null, 2)}\n`);
process.stdout.write(`wrote ${out}\n`);
