import { Type } from 'typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { errorResponses } from '../schemas/common.js';
import type { ApiFirewall } from '../firewall.js';
import { failsafeView } from '../../src/policy/failsafe.js';

const Default = Type.Union([Type.Literal('accept'), Type.Literal('drop')]);
const InterfacePolicy = Type.Object(
  { iface: Type.String(), ingress: Type.Optional(Default), egress: Type.Optional(Default) },
  { additionalProperties: false },
);
const Policy = Type.Object(
  {
    ingress: Default,
    egress: Default,
    interfaces: Type.Optional(Type.Array(InterfacePolicy, {
      description: 'Interfaces with their own default policy (configuration file only; PUT does not change them): it applies to their packets instead of the hook\'s',
    })),
  },
  {
    additionalProperties: false,
    description: 'What happens to packets no rule matched. With ingress drop, replies to flows this host opened still pass (pass_reply).',
  },
);
const PolicyUpdate = Type.Object({ ingress: Type.Optional(Default), egress: Type.Optional(Default) }, { additionalProperties: false });
const FailsafeList = Type.Object({
  items: Type.Array(
    Type.Object({
      cidr: Type.Union([Type.String(), Type.Null()], { description: 'remote peers' }),
      proto: Type.Union([Type.String(), Type.Integer(), Type.Null()]),
      port: Type.Union([Type.Integer(), Type.String(), Type.Null()], { description: 'local port (tcp, udp) or ICMP type' }),
    }),
  ),
});

export interface PolicyRoutesOptions {
  firewall: ApiFirewall;
}

export const policyRoutes: FastifyPluginAsyncTypebox<PolicyRoutesOptions> = async (app, { firewall }) => {
  // `interfaces` only when the configuration gives some interface its own default.
  const withInterfaces = (defaults: { ingress: 'accept' | 'drop'; egress: 'accept' | 'drop' }) => {
    const interfaces = firewall.policy.interfaceDefaults.map(({ iface, policy }) => ({ iface, ...policy }));
    return interfaces.length > 0 ? { ...defaults, interfaces } : defaults;
  };
  app.get('/v1/policy', {
    schema: { tags: ['rules'], summary: 'The default policy per hook', response: { 200: Policy } },
  }, async () => withInterfaces(firewall.policy.defaultPolicy));

  app.put('/v1/policy', {
    schema: {
      tags: ['rules'],
      summary: 'Set the default policy per hook (stored; it outlives restarts and wins over the configuration file)',
      body: PolicyUpdate,
      response: { 200: Policy, ...errorResponses(400, 415, 503, 507) },
    },
  }, async (request) => {
    firewall.fileManaged.checkPolicy();
    const updated = await firewall.rules.setDefaults({ ...firewall.policy.defaultPolicy, ...request.body });
    request.audit({ list: 'policy' });
    return withInterfaces(updated);
  });

  app.get('/v1/failsafe', {
    schema: {
      tags: ['rules'],
      summary: 'The failsafe list: passes before any block, rule or default can drop (from the configuration file only)',
      response: { 200: FailsafeList },
    },
  }, async () => ({ items: firewall.failsafe.map(failsafeView) }));
};
