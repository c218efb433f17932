import { Type, type Static } from 'typebox';
import { MAX_BULK_ITEMS, MAX_COMMENT_LENGTH, MAX_PAGE_SIZE, DEFAULT_PAGE_SIZE } from '../../src/rules/blocks.js';

const direction = (description: string) => Type.Union([Type.Literal('src'), Type.Literal('dst')], { description });
const Direction = direction('Match the packet source (default) or destination address');
const Force = Type.Optional(
  Type.Boolean({ description: 'Block even if this cuts the requesting client off from the API (otherwise 409 SELF_LOCKOUT)' }),
);

export const BlockCreate = Type.Object(
  {
    cidr: Type.String({ minLength: 1, maxLength: 64, examples: ['198.18.7.0/24', 'fd00:198::/48'] }),
    comment: Type.Optional(Type.Union([Type.String({ maxLength: MAX_COMMENT_LENGTH }), Type.Null()])),
    direction: Type.Optional(Direction),
    force: Force,
  },
  { additionalProperties: false },
);
export type BlockCreate = Static<typeof BlockCreate>;

export const BlockBulk = Type.Object(
  { items: Type.Array(BlockCreate, { maxItems: MAX_BULK_ITEMS }), force: Force },
  { additionalProperties: false },
);
export type BlockBulk = Static<typeof BlockBulk>;

export const BlockBulkResult = Type.Object({
  created: Type.Integer({ description: 'Rules added by this request' }),
  existing: Type.Integer({ description: 'Items that were already blocked or repeated' }),
});

export const Block = Type.Object(
  {
    id: Type.Integer(),
    cidr: Type.String({ description: 'Canonical form: host bits zero, IPv6 compressed' }),
    direction: Direction,
    comment: Type.Union([Type.String(), Type.Null()]),
    createdAt: Type.String({ format: 'date-time' }),
    hits: Type.Optional(Type.Ref('CounterPair', { description: 'Packets and bytes this rule dropped' })),
  },
  { $id: 'Block', title: 'Block' },
);

export const BlockList = Type.Object({
  items: Type.Array(Type.Ref('Block')),
  total: Type.Integer({ description: 'Matching rules over all pages' }),
  limit: Type.Integer(),
  offset: Type.Integer(),
});

export const BlockListQuery = Type.Object(
  {
    limit: Type.Integer({ minimum: 1, maximum: MAX_PAGE_SIZE, default: DEFAULT_PAGE_SIZE }),
    offset: Type.Integer({ minimum: 0, default: 0 }),
    contains: Type.Optional(Type.String({ maxLength: 64, description: 'Only blocks whose prefix contains this IP' })),
  },
  { additionalProperties: false },
);
export type BlockListQuery = Static<typeof BlockListQuery>;

export const BlockIdParams = Type.Object({ id: Type.Integer({ minimum: 1 }) });
export type BlockIdParams = Static<typeof BlockIdParams>;

export const BlockDeleteQuery = Type.Object(
  {
    cidr: Type.String({ minLength: 1, maxLength: 64 }),
    direction: Type.Optional(direction('Remove only this direction; both when omitted')),
  },
  { additionalProperties: false },
);
export type BlockDeleteQuery = Static<typeof BlockDeleteQuery>;
