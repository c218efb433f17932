import { Type, type Static } from 'typebox';

/** The one error body every 4xx/5xx uses. `code` is stable; `message` is for people. */
export const ErrorBody = Type.Object(
  {
    error: Type.Object({
      code: Type.String({ description: 'Stable machine-readable code, e.g. INVALID_CIDR' }),
      message: Type.String(),
    }),
  },
  { $id: 'Error', title: 'Error' },
);
export type ErrorBody = Static<typeof ErrorBody>;

export const CounterPair = Type.Object(
  { packets: Type.Integer({ minimum: 0 }), bytes: Type.Integer({ minimum: 0 }) },
  { $id: 'CounterPair', title: 'CounterPair' },
);

/** Error responses a route may produce, for the OpenAPI document. */
export const errorResponses = (...statuses: number[]) =>
  Object.fromEntries(statuses.map((status) => [status, Type.Ref('Error')]));
