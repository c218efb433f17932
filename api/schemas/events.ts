import { Type, type Static } from 'typebox';

const filters = {
  reason: Type.Optional(Type.String({ maxLength: 512, description: 'Reason names, comma-separated (e.g. deny_src_cidr,drop_rule)' })),
  rule: Type.Optional(Type.Integer({ minimum: 1, description: 'Only packets this policy rule (/v1/rules id) decided' })),
  block: Type.Optional(Type.Integer({ minimum: 1, description: 'Only packets this block (/v1/blocks id) decided' })),
  src: Type.Optional(Type.String({ maxLength: 64, description: 'Source address inside this CIDR' })),
  iface: Type.Optional(Type.String({ maxLength: 80, description: 'Interface as configured (IFNAME or NETNS/IFNAME)' })),
};

export const EventQuery = Type.Object(filters, { additionalProperties: false });
export type EventQuery = Static<typeof EventQuery>;

export const MAX_CAPTURE_SECONDS = 300;
export const MAX_CAPTURE_PACKETS = 100_000;

export const CaptureQuery = Type.Object(
  {
    ...filters,
    seconds: Type.Integer({ minimum: 1, maximum: MAX_CAPTURE_SECONDS, default: 10, description: 'Capture for this long' }),
    count: Type.Integer({ minimum: 1, maximum: MAX_CAPTURE_PACKETS, default: 10_000, description: 'Stop after this many packets' }),
  },
  { additionalProperties: false },
);
export type CaptureQuery = Static<typeof CaptureQuery>;

export const DropEvent = Type.Object(
  {
    time: Type.String({ format: 'date-time' }),
    monotonicNs: Type.String({ description: 'The kernel CLOCK_MONOTONIC stamp, ns' }),
    iface: Type.Union([Type.String(), Type.Null()]),
    ifindex: Type.Integer(),
    direction: Type.Union([Type.Literal('ingress'), Type.Literal('egress')]),
    verdict: Type.Union([Type.Literal('pass'), Type.Literal('drop')]),
    reason: Type.String(),
    rule: Type.Union([Type.Integer(), Type.Null()], { description: 'The policy rule that decided' }),
    block: Type.Union([Type.Integer(), Type.Null()], { description: 'The block that decided' }),
    family: Type.Union([Type.Literal(0), Type.Literal(4), Type.Literal(6)]),
    src: Type.Union([Type.String(), Type.Null()]),
    dst: Type.Union([Type.String(), Type.Null()]),
    proto: Type.Union([Type.String(), Type.Null()]),
    srcPort: Type.Union([Type.Integer(), Type.Null()], { description: 'For ICMP echo the identifier, for other ICMP the type' }),
    dstPort: Type.Union([Type.Integer(), Type.Null()], { description: 'For ICMP echo the identifier, for other ICMP the code' }),
    vlan: Type.Union([Type.Integer(), Type.Null()]),
    tcpFlags: Type.Array(Type.String()),
    length: Type.Integer({ description: 'Frame length' }),
    snapshot: Type.String({ description: 'The first 128 bytes of the frame, base64' }),
  },
  { $id: 'DropEvent', title: 'DropEvent', description: 'One sampled packet: the data of each /v1/events message' },
);

export const EventStats = Type.Object({
  sampled: Type.Integer({ minimum: 0, description: 'Events the data plane emitted' }),
  lostCap: Type.Integer({ minimum: 0, description: 'Sampled but over the events-per-second cap' }),
  lostRing: Type.Integer({ minimum: 0, description: 'Sampled but the ring buffer was full' }),
  slowClients: Type.Integer({ minimum: 0, description: 'Clients disconnected for reading too slowly' }),
  listeners: Type.Integer({ minimum: 0 }),
});
