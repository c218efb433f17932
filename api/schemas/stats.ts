import { Type } from 'typebox';
import { Reason } from '../../src/datapath/abi.js';

const Reasons = Type.Object(
  Object.fromEntries(Object.keys(Reason).map((name) => [name, Type.Optional(Type.Ref('CounterPair'))])),
  { description: 'Packets and bytes by reason; reasons that counted nothing are left out' },
);

const DirectionStats = Type.Object({
  verdicts: Type.Object({ pass: Type.Ref('CounterPair'), drop: Type.Ref('CounterPair') }),
  reasons: Reasons,
});

export const Stats = Type.Object({
  interfaces: Type.Array(
    Type.Object({
      iface: Type.Union([Type.String(), Type.Null()]),
      ifindex: Type.Integer(),
      ingress: DirectionStats,
      egress: DirectionStats,
    }),
  ),
  totals: Type.Object({ ingress: DirectionStats, egress: DirectionStats }),
});

const XdpMode = Type.Union([Type.Literal('native'), Type.Literal('generic')]);

export const InterfaceList = Type.Object({
  items: Type.Array(
    Type.Object({
      iface: Type.String({ description: 'IFNAME or NETNS/IFNAME' }),
      ifindex: Type.Integer(),
      xdpMode: XdpMode,
      requestedMode: Type.Union([XdpMode, Type.Literal('auto')]),
      egress: Type.Boolean({ description: 'TC egress accounting attached' }),
      state: Type.Union([Type.Literal('attached'), Type.Literal('degraded')], {
        description: 'degraded: our programs are not on the interface now (see reason); the daemon keeps re-attaching',
      }),
      reason: Type.Optional(Type.String()),
    }),
  ),
});

export const Health = Type.Object({
  status: Type.Union([Type.Literal('ok'), Type.Literal('degraded')], {
    description: 'degraded: some interface is not filtered now (see degraded), the kernel is still being reconciled with the stored rules after a restart (degraded[].restore), or an integration fails (see integrations); the process itself is alive',
  }),
  degraded: Type.Optional(Type.Array(Type.Object({
    iface: Type.Optional(Type.String({ description: 'an interface not filtered now' })),
    feed: Type.Optional(Type.String({ description: 'the list of a feed whose last refresh failed (its last good version stays in force)' })),
    rulesFile: Type.Optional(Type.String({ description: 'the --rules file, when its last version could not be applied (the last good state stays)' })),
    restore: Type.Optional(Type.Union([Type.Literal('running'), Type.Literal('failed')], {
      description: 'a restart serving before the pinned maps are reconciled with the stored rules: they enforce what the previous run left meanwhile; changes wait for it',
    })),
    reason: Type.String(),
  }))),
  integrations: Type.Optional(Type.Array(Type.Object({
    name: Type.String({ description: 'e.g. crowdsec' }),
    state: Type.Union([Type.Literal('starting'), Type.Literal('ok'), Type.Literal('degraded')], {
      description: 'degraded: the last update failed (see reason); what it applied before stays in force',
    }),
    reason: Type.Optional(Type.String()),
    lastSuccessAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
    entries: Type.Integer({ description: 'Entries in force from it (e.g. active ban decisions)' }),
  }), { description: 'Sources the daemon pulls from (crowdsec:); status is degraded while one is' })),
  uptimeSeconds: Type.Integer(),
  interfaces: Type.Integer(),
  blocks: Type.Integer(),
  warnings: Type.Array(Type.String(), { description: 'What an operator should know, e.g. that no interface is attached' }),
});
