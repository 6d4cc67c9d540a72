// The API's schema validator: fastify's own ajv compiler, set so that a request is
// refused rather than repaired. Fastify's defaults drop unknown properties
// (removeAdditional) and turn "3" into 3 (coerceTypes): a JSON body must arrive
// exactly as its schema says, unknown fields included in the refusal. Query strings
// and path parameters are text by nature, so there types are coerced ("?limit=50")
// and a parameter left out takes its schema's default.
import { AjvCompiler } from '@fastify/ajv-compiler';
import type { FastifySchemaCompiler } from 'fastify';

const strict = { removeAdditional: false, coerceTypes: false, useDefaults: false, allErrors: false } as const;
const build = AjvCompiler();
const forBody = build({}, { customOptions: strict });
const forText = build({}, { customOptions: { ...strict, coerceTypes: true, useDefaults: true } });

export const apiValidatorCompiler: FastifySchemaCompiler<unknown> = (route) => {
  const compile = route.httpPart === 'body' ? forBody : forText;
  return compile(route as Parameters<typeof compile>[0]) as ReturnType<FastifySchemaCompiler<unknown>>;
};
