// Input is taken as written or refused, never reinterpreted: a firewall rule
// that the server "fixed up" is a different rule from the one the operator
// meant. Three things here make Fastify strict where its defaults are lenient.
import { isUtf8 } from 'node:buffer';
import { AjvCompiler } from '@fastify/ajv-compiler';
import type { FastifyInstance, FastifyServerOptions } from 'fastify';
import { XdpwallError } from '../../src/errors.js';
import { isPrintableText } from '../../src/text.js';

/** The ajv options for buildApp: no silent drops, and the `printable` string format. */
export const ajvOptions: FastifyServerOptions['ajv'] = {
  customOptions: {
    // Unknown fields are rejected, not silently dropped: a typo in a firewall
    // rule must not turn into a different rule.
    removeAdditional: false,
    formats: { printable: { type: 'string', validate: isPrintableText } },
  },
};

/**
 * What a schema error says, as ajv words it, except that the printable
 * format names what is wrong instead of the format's name. typebox's
 * errors (the streamed bulk body, api/bulk-body.ts) have the same shape.
 */
export function schemaErrorWording(error: { keyword?: string; params?: object; message?: string }): string | undefined {
  const { keyword, params } = error;
  return keyword === 'format' && params && 'format' in params && params.format === 'printable' ? 'must not contain control characters' : error.message;
}

/** Fastify's wording ("body/comment must be string"), with schemaErrorWording. */
export const schemaErrorFormatter: NonNullable<FastifyServerOptions['schemaErrorFormatter']> = (errors, dataVar) =>
  new Error(errors.map((error) => `${dataVar}${error.instancePath} ${schemaErrorWording(error)}`).join(', '));

type BuildValidator = NonNullable<NonNullable<FastifyServerOptions['schemaController']>['compilersFactory']>['buildValidator'];

/**
 * Query strings and path parameters arrive as text, so they are coerced to
 * the schema's types ("?limit=10"). JSON bodies carry their own types, and
 * coercing them is how `{"cidr": ["1.2.3.4"]}` became a rule and a numeric
 * comment became a string: bodies are validated without coercion.
 */
export const buildValidator: BuildValidator = (externalSchemas, options) => {
  const pool = AjvCompiler();
  const coercing = pool(externalSchemas, options);
  // JTD mode is never configured here; the union type only needs narrowing.
  const ajv = options as Exclude<Parameters<typeof pool>[1], { mode: 'JTD' }>;
  const exact = pool(externalSchemas, { ...ajv, customOptions: { ...ajv?.customOptions, coerceTypes: false } });
  return (route) => (route.httpPart === 'body' ? exact : coercing)(route);
};

export class InvalidUtf8Error extends XdpwallError {
  override readonly name = 'InvalidUtf8Error';
  constructor() {
    super('INVALID_UTF8', 'the request body is not valid UTF-8');
  }
}

/**
 * JSON bodies must be valid UTF-8. Fastify decodes bytes leniently, turning
 * each invalid sequence into U+FFFD, so a comment would be stored as something
 * other than what was sent; the bytes are checked first, then parsed by
 * Fastify's own (prototype-poisoning safe) JSON parser.
 */
export function registerStrictJson(app: FastifyInstance): void {
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (request, body: Buffer, done) => {
    if (!isUtf8(body)) {
      done(new InvalidUtf8Error(), undefined);
      return;
    }
    parseJson(request, body.toString('utf8'), done);
  });
}
