import { Type, type Static } from 'typebox';

export const MAX_AUDIT_PAGE = 1000;

const Scope = Type.Union([Type.Literal('read'), Type.Literal('write'), Type.Literal('admin')], {
  description: 'read: GET routes; write: also changes rules; admin: also tokens and the audit log',
});

export const Token = Type.Object({
  id: Type.Integer(),
  name: Type.String(),
  scope: Scope,
  createdAt: Type.String({ format: 'date-time' }),
});

export const TokenList = Type.Object({ items: Type.Array(Token) });

export const TokenCreate = Type.Object(
  { name: Type.String({ minLength: 1, maxLength: 64 }), scope: Scope },
  { additionalProperties: false },
);
export type TokenCreate = Static<typeof TokenCreate>;

export const TokenCreated = Type.Object({
  ...Token.properties,
  token: Type.String({ description: 'The secret, shown this once: only its SHA-256 digest is stored' }),
});

export const TokenNameParams = Type.Object({ name: Type.String({ minLength: 1, maxLength: 64 }) });

export const AuditQuery = Type.Object(
  {
    limit: Type.Integer({ minimum: 1, maximum: MAX_AUDIT_PAGE, default: 100 }),
    since: Type.Optional(Type.String({ format: 'date-time', description: 'Entries at or after this time, oldest first; without it, the latest `limit`' })),
  },
  { additionalProperties: false },
);
export type AuditQuery = Static<typeof AuditQuery>;

export const AuditList = Type.Object({
  items: Type.Array(
    Type.Object({
      id: Type.Integer(),
      time: Type.String({ format: 'date-time' }),
      principal: Type.String({ description: 'Token name, "unix" (the unix socket) or "local" (the CLI on the state directory)' }),
      remote: Type.Union([Type.String(), Type.Null()], { description: 'Client address; null on the unix socket' }),
      method: Type.String(),
      route: Type.String(),
      status: Type.Integer(),
      detail: Type.Object(
        {
          list: Type.Optional(Type.String()),
          cidr: Type.Optional(Type.String()),
          direction: Type.Optional(Type.String()),
          ruleId: Type.Optional(Type.Integer()),
          count: Type.Optional(Type.Integer()),
          created: Type.Optional(Type.Integer()),
          existing: Type.Optional(Type.Integer()),
          token: Type.Optional(Type.String()),
          scope: Type.Optional(Type.String()),
          error: Type.Optional(Type.String()),
          force: Type.Optional(Type.Boolean()),
          name: Type.Optional(Type.String()),
          revision: Type.Optional(Type.Integer()),
        },
        { description: 'What changed, or was asked for: the fields that apply' },
      ),
    }),
  ),
});
