import { Type, type Static } from 'typebox';
import { MAX_BULK_ITEMS, MAX_COMMENT_LENGTH, MAX_PAGE_SIZE, DEFAULT_PAGE_SIZE } from '../../src/rules/blocks.js';
import { MAX_TTL_SECONDS } from '../../src/policy/model.js';
import { ORIGIN_PATTERN } from '../../src/policy/block-meta.js';

const Origin = (description: string) => Type.String({ pattern: ORIGIN_PATTERN, maxLength: 32, description, examples: ['api', 'crowdsec', 'fail2ban'] });

const direction = (description: string) => Type.Union([Type.Literal('src'), Type.Literal('dst')], { description });
const Direction = direction('Match the packet source (default) or destination address');
const Force = Type.Optional(
  Type.Boolean({ description: 'Block even if this cuts the requesting client off from the API (otherwise 409 SELF_LOCKOUT)' }),
);

/** One block request: the body of POST /v1/blocks and each item of POST /v1/blocks/bulk (the same rules for both). */
export const BlockCreate = Type.Object(
  {
    cidr: Type.String({ minLength: 1, maxLength: 64, examples: ['198.18.7.0/24', 'fd00:198::/48'] }),
    comment: Type.Optional(
      Type.Union([
        Type.String({ maxLength: MAX_COMMENT_LENGTH, format: 'printable', description: 'Free text without control characters' }),
        Type.Null(),
      ]),
    ),
    direction: Type.Optional(Direction),
    force: Force,
    ttl: Type.Optional(Type.Union([Type.Integer({ minimum: 1, maximum: MAX_TTL_SECONDS, description: 'seconds until the block expires' }), Type.Null()])),
    expiresAt: Type.Optional(Type.Union([Type.String({ maxLength: 40, description: 'ISO 8601; instead of ttl' }), Type.Null()])),
    dryRun: Type.Optional(Type.Boolean({ description: 'count what the block would drop (would_drop) but pass' })),
    origin: Type.Optional(Origin('Who makes the block (default "api"), e.g. "fail2ban"; re-blocking gives the block to the origin whose expiry is later')),
  },
  { additionalProperties: false },
);
export type BlockCreate = Static<typeof BlockCreate>;

/** The body of POST /v1/blocks (an alias kept for existing imports). */
export const BlockCreateOne = BlockCreate;

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
    expiresAt: Type.Optional(Type.Union([Type.String({ format: 'date-time' }), Type.Null()], { description: 'When the block expires; null: never' })),
    dryRun: Type.Optional(Type.Boolean({ description: 'Counted as would_drop, not dropped' })),
    origin: Type.Optional(Type.String({ description: 'Who made it: "api", or an integration ("crowdsec", "fail2ban", ...)' })),
    hits: Type.Optional(Type.Ref('CounterPair', { description: 'Packets and bytes this rule dropped' })),
    wouldDrop: Type.Optional(Type.Ref('CounterPair', { description: 'Dry-run blocks: what they would have dropped' })),
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
    offset: Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER, default: 0 }),
    contains: Type.Optional(Type.String({ maxLength: 64, description: 'Only blocks whose prefix contains this IP' })),
    origin: Type.Optional(Origin('Only blocks of this origin ("api": those made through the API)')),
  },
  { additionalProperties: false },
);
export type BlockListQuery = Static<typeof BlockListQuery>;

export const BlockIdParams = Type.Object({ id: Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER }) });
export type BlockIdParams = Static<typeof BlockIdParams>;

export const BlockDeleteQuery = Type.Object(
  {
    cidr: Type.String({ minLength: 1, maxLength: 64 }),
    direction: Type.Optional(direction('Remove only this direction; both when omitted')),
  },
  { additionalProperties: false },
);
export type BlockDeleteQuery = Static<typeof BlockDeleteQuery>;
