import { Type, type Static } from 'typebox';
import { DEFAULT_FLOW_LIMIT, MAX_FLOW_LIMIT } from '../../src/flows/query.js';

export const FlowQuery = Type.Object(
  {
    limit: Type.Integer({ minimum: 1, maximum: MAX_FLOW_LIMIT, default: DEFAULT_FLOW_LIMIT }),
    sort: Type.Union([Type.Literal('bytes'), Type.Literal('packets'), Type.Literal('lastSeen')], { default: 'bytes' }),
    src: Type.Optional(Type.String({ maxLength: 64, description: 'Remote peer inside this CIDR' })),
    dst: Type.Optional(Type.String({ maxLength: 64, description: 'Local address inside this CIDR' })),
    proto: Type.Optional(Type.String({ maxLength: 8, description: 'tcp, udp, icmp, icmpv6 or a protocol number' })),
    port: Type.Optional(Type.Integer({ minimum: 0, maximum: 65535, description: 'Either port' })),
  },
  { additionalProperties: false },
);
export type FlowQuery = Static<typeof FlowQuery>;

export const Flow = Type.Object(
  {
    proto: Type.String(),
    src: Type.String({ description: 'Remote peer' }),
    srcPort: Type.Integer({ description: 'Port; for ICMP echo the identifier, for other ICMP the type' }),
    dst: Type.String({ description: 'Local address' }),
    dstPort: Type.Integer({ description: 'Port; for ICMP echo the identifier, for other ICMP the code' }),
    iface: Type.Union([Type.String(), Type.Null()]),
    ingress: Type.Ref('CounterPair'),
    egress: Type.Ref('CounterPair'),
    firstSeen: Type.String({ format: 'date-time' }),
    lastSeen: Type.String({ format: 'date-time' }),
    tcpFlags: Type.Array(Type.String(), { description: 'TCP flags seen in either direction' }),
  },
  { $id: 'Flow', title: 'Flow' },
);

export const FlowList = Type.Object({
  items: Type.Array(Type.Ref('Flow')),
  asOf: Type.String({
    format: 'date-time',
    description: 'When the walk of the flow table this answer comes from began: answers come from a snapshot at most flowSnapshotMaxAgeMs old',
  }),
});
