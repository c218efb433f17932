// A request schema checked outside Fastify's validator: items of the streamed
// bulk body (api/bulk-body.ts), and request bodies the CLI builds before it
// sends them. One schema, worded as the routes' 400 INVALID_REQUEST.
import { Compile } from 'typebox/compile';
import Format from 'typebox/format';
import type { TSchema } from 'typebox';
import { InvalidRequestError } from '../../src/errors.js';
import { isPrintableText } from '../../src/text.js';
import { schemaErrorWording } from '../plugins/strict-input.js';

// The same `printable` format the route schemas get from ajv (plugins/strict-input.ts).
Format.Set('printable', isPrintableText);

/** A checker for `schema`: throws INVALID_REQUEST naming the first error under `path` (e.g. "body/items/3"). */
export function requestChecker<T extends TSchema>(schema: T): (value: unknown, path: string) => void {
  const compiled = Compile(schema);
  return (value, path) => {
    if (compiled.Check(value)) return;
    const [first] = compiled.Errors(value);
    throw new InvalidRequestError(`${path}${describe(first)}`);
  };
}

/** A schema error worded like the route schemas' (ajv via plugins/strict-input.ts). */
function describe(error: Parameters<typeof schemaErrorWording>[0] & { instancePath?: string } | undefined): string {
  if (error === undefined) return ' is not valid';
  const path = error.instancePath ?? '';
  // An unknown field: its subschema is `false` under additionalProperties.
  if (error.message === 'schema is false') return ` must NOT have additional properties (${path.slice(1)})`;
  return `${path} ${schemaErrorWording(error)}`;
}
