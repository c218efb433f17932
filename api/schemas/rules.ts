import { Type, type Static } from 'typebox';
import { DEFAULT_PRIORITY, MAX_PRIORITY, MAX_RULE_COMMENT_LENGTH, MAX_TTL_SECONDS } from '../../src/policy/model.js';
import { DEFAULT_RULE_PAGE, MAX_RULE_PAGE } from '../../src/policy/rules.js';
import { MAX_BAN_AFTER, MAX_BAN_WITHIN, MAX_BPS, MAX_BURST, MAX_PPS } from '../../src/ratelimit/model.js';

const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(schema: T) => Type.Optional(Type.Union([schema, Type.Null()]));
const Action = Type.Union([Type.Literal('drop'), Type.Literal('pass'), Type.Literal('log'), Type.Literal('ratelimit')], {
  description: 'drop, pass, log (pass and count), or ratelimit (pass under `rate`, drop over it)',
});
const Per = Type.Union([Type.Literal('source'), Type.Literal('source-prefix'), Type.Literal('rule')], {
  description: 'one bucket per source address (default), per source prefix (prefixV4/prefixV6, default /24 and /64), or one for the rule',
});
const RateBody = Type.Object(
  {
    pps: Nullable(Type.Integer({ minimum: 1, maximum: MAX_PPS, description: 'packets per second' })),
    bps: Nullable(Type.Integer({ minimum: 1, maximum: MAX_BPS, description: 'bits per second (frame bytes x 8)' })),
    burst: Nullable(Type.Integer({ minimum: 1, maximum: MAX_BURST, description: 'packets that may pass at once after idle; default one second of pps' })),
    per: Type.Optional(Per),
    prefixV4: Nullable(Type.Integer({ minimum: 1, maximum: 32 })),
    prefixV6: Nullable(Type.Integer({ minimum: 1, maximum: 128 })),
  },
  { additionalProperties: false, description: 'action ratelimit only: pps and/or bps (a packet must fit both)' },
);
const BanBody = Type.Object(
  {
    afterDrops: Type.Integer({ minimum: 1, maximum: MAX_BAN_AFTER }),
    within: Type.Integer({ minimum: 1, maximum: MAX_BAN_WITHIN, description: 'seconds' }),
    ttl: Type.Integer({ minimum: 1, maximum: MAX_TTL_SECONDS, description: 'seconds the auto block lasts' }),
  },
  { additionalProperties: false, description: 'a source with afterDrops drops within `within` seconds gets a block (origin auto) for ttl seconds' },
);
const Hook = Type.Union([Type.Literal('ingress'), Type.Literal('egress')], { description: 'ingress (XDP) or egress (TC); default ingress' });
const Address = Type.String({
  minLength: 1, maxLength: 70,
  description: 'CIDR or bare address, IPv4 or IPv6; or "list:NAME": the entries of a named list (/v1/lists), which must exist',
});
const Proto = Type.Union([Type.String({ maxLength: 8 }), Type.Integer({ minimum: 0, maximum: 255 })], {
  description: 'tcp | udp | icmp | icmpv6 | 0..255',
});
const Port = Type.Union([Type.Integer({ minimum: 0, maximum: 65535 }), Type.String({ maxLength: 16 })], {
  description: 'a port, or an inclusive range "LO-HI"; tcp and udp only',
});

export const RuleBody = Type.Object(
  {
    action: Action,
    priority: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_PRIORITY, description: `lower is evaluated first; ties by id; default ${DEFAULT_PRIORITY}` })),
    hook: Type.Optional(Hook),
    iface: Nullable(Type.String({ minLength: 1, maxLength: 80, description: 'IFNAME or NETNS/IFNAME; default every attached interface' })),
    src: Nullable(Address),
    dst: Nullable(Address),
    proto: Nullable(Proto),
    srcPort: Nullable(Port),
    dstPort: Nullable(Port),
    tcpFlags: Nullable(Type.String({ maxLength: 64, description: 'flags that must be set, or clear with "!": "syn,!ack"' })),
    icmpType: Nullable(Type.Integer({ minimum: 0, maximum: 255 })),
    icmpCode: Nullable(Type.Integer({ minimum: 0, maximum: 255 })),
    vlan: Nullable(Type.Integer({ minimum: 0, maximum: 4095, description: 'innermost VLAN id' })),
    ttl: Nullable(Type.Integer({ minimum: 1, maximum: MAX_TTL_SECONDS, description: 'seconds until the rule expires' })),
    expiresAt: Nullable(Type.String({ maxLength: 40, description: 'ISO 8601; instead of ttl' })),
    dryRun: Type.Optional(Type.Boolean({ description: 'count what the rule would do (wouldDrop) but pass the packet' })),
    comment: Nullable(Type.String({ maxLength: MAX_RULE_COMMENT_LENGTH, format: 'printable' })),
    rate: Nullable(RateBody),
    ban: Nullable(BanBody),
  },
  { additionalProperties: false },
);
export type RuleBody = Static<typeof RuleBody>;

const OrNull = <T extends Parameters<typeof Type.Union>[0][number]>(schema: T) => Type.Union([schema, Type.Null()]);

export const Rule = Type.Object(
  {
    id: Type.Integer(),
    action: Action,
    priority: Type.Integer(),
    hook: Hook,
    iface: OrNull(Type.String()),
    src: OrNull(Type.String({ description: 'as written: a CIDR or "list:NAME"' })),
    dst: OrNull(Type.String({ description: 'as written: a CIDR or "list:NAME"' })),
    proto: OrNull(Type.Union([Type.String(), Type.Integer()])),
    srcPort: OrNull(Type.Union([Type.Integer(), Type.String()])),
    dstPort: OrNull(Type.Union([Type.Integer(), Type.String()])),
    tcpFlags: OrNull(Type.String()),
    icmpType: OrNull(Type.Integer()),
    icmpCode: OrNull(Type.Integer()),
    vlan: OrNull(Type.Integer()),
    dryRun: Type.Boolean(),
    comment: OrNull(Type.String()),
    createdAt: Type.String({ format: 'date-time' }),
    expiresAt: OrNull(Type.String({ format: 'date-time' })),
    hits: Type.Ref('CounterPair', { description: 'Packets and bytes the rule matched' }),
    wouldDrop: Type.Optional(Type.Ref('CounterPair', { description: 'Dry-run drop rules: what they would have dropped' })),
    rate: Type.Optional(Type.Object({
      pps: OrNull(Type.Integer()),
      bps: OrNull(Type.Integer()),
      burst: OrNull(Type.Integer()),
      per: Per,
      prefixV4: Type.Optional(Type.Integer()),
      prefixV6: Type.Optional(Type.Integer()),
    })),
    ban: Type.Optional(Type.Object({ afterDrops: Type.Integer(), within: Type.Integer(), ttl: Type.Integer() })),
    rateLimit: Type.Optional(Type.Object({
      admitted: Type.Ref('CounterPair'),
      dropped: Type.Ref('CounterPair', { description: 'over the limit (dry-run: would have been dropped)' }),
      activeBuckets: Type.Integer({ description: 'source buckets the rule has now' }),
      bans: Type.Integer({ description: 'auto blocks made since the daemon started' }),
    }, { description: 'ratelimit rules only' })),
  },
  { $id: 'Rule', title: 'Rule' },
);

export const RuleList = Type.Object({
  items: Type.Array(Type.Ref('Rule')),
  total: Type.Integer({ description: 'Matching rules over all pages' }),
  limit: Type.Integer(),
  offset: Type.Integer(),
});

export const RuleListQuery = Type.Object(
  {
    limit: Type.Integer({ minimum: 1, maximum: MAX_RULE_PAGE, default: DEFAULT_RULE_PAGE }),
    offset: Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER, default: 0 }),
    hook: Type.Optional(Hook),
    iface: Type.Optional(Type.String({ minLength: 1, maxLength: 80 })),
  },
  { additionalProperties: false },
);
export type RuleListQuery = Static<typeof RuleListQuery>;

export const RuleIdParams = Type.Object({ id: Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER }) });

export const RateLimitTopQuery = Type.Object(
  { limit: Type.Integer({ minimum: 1, maximum: 1000, default: 20 }) },
  { additionalProperties: false },
);

export const RateLimitTop = Type.Object({
  items: Type.Array(Type.Object({
    ruleId: Type.Integer(),
    source: Type.String({ description: 'address, or prefix for per source-prefix rules' }),
    windowDrops: Type.Integer({ description: "drops in the bucket's current window (the ban's within, else 1 s)" }),
    dropped: Type.Integer(),
    admitted: Type.Integer(),
  })),
});
