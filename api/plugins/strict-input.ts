// Input is taken as written or refused, never reinterpreted: a firewall rule
// that the server "fixed up" is a different rule from the one the operator
// meant. Three things here make Fastify strict where its defaults are lenient.
import { isUtf8 } from 'node:buffer';
import { AjvCompiler, type Options } from '@fastify/ajv-compiler';
import type { FastifyInstance, FastifyServerOptions } from 'fastify';
import { XdpwallError } from '../../src/errors.js';

/**
 * C0 and C1 controls, DEL, the line/paragraph separators and the bidi
 * embedding/override/isolate marks: characters that rewrite a terminal or
 * reorder what a reader sees (a comment holding ESC[2J clears the operator's
 * screen; one holding U+202E shows text backwards).
 */
const CONTROL_CHARACTER = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;

/** A surrogate without its other half: JSON's "\\ud800" decodes to one, UTF-8 cannot store it. */
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** Text a person will read: well-formed UTF-16 and no control characters. */
export function isPrintableText(text: string): boolean {
  return !CONTROL_CHARACTER.test(text) && !LONE_SURROGATE.test(text);
}

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
 * Fastify's wording ("body/comment must be string"), except that the
 * printable format names what is wrong instead of the format's name.
 */
export const schemaErrorFormatter: NonNullable<FastifyServerOptions['schemaErrorFormatter']> = (errors, dataVar) =>
  new Error(
    errors
      .map(({ instancePath, keyword, params, message }) => {
        const what = keyword === 'format' && params.format === 'printable' ? 'must not contain control characters' : message;
        return `${dataVar}${instancePath} ${what}`;
      })
      .join(', '),
  );

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
