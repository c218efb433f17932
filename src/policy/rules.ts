// Policy rules: validation, durable storage and enforcement as one step,
// in the order of the block service (src/rules/blocks.ts): the store is the
// truth and the kernel is derived from it.
//   add/update: row committed -> hook recompiled and flipped in; if the
//               kernel refuses, the row is deleted (or its old version put
//               back) and the error reported.
//   remove:     hook recompiled without the rule and flipped in -> row
//               deleted; if the delete fails, the rule goes back in.
// Changes are serialised by a WriteLock.
import { WriteLock } from '../rules/write-lock.js';
import type { RuleStore } from '../rules/store.js';
import { CapacityError, InvalidArgumentError, InvalidRuleError, NotFoundError, collectFailures, withUndoFailures } from '../errors.js';
import { POL_MAX_RULES } from '../datapath/abi.js';
import { listRef, parseRule, type PolicyRule, type RuleHook, type RuleInput, type RuleSpec } from './model.js';
import type { ListUsers } from '../lists/service.js';
import { byEvaluationOrder, type PolicyDefaults, type PolicyEngine } from './engine.js';

/** The settings key PUT /v1/policy stores the default policy under. */
export const POLICY_SETTING = 'policy';

export const DEFAULT_RULE_PAGE = 100;
export const MAX_RULE_PAGE = 1000;

export interface RuleListQuery {
  hook?: RuleHook;
  iface?: string;
  limit?: number;
  offset?: number;
}

export interface RuleServiceOptions {
  now?: () => Date;
  /** Refuses rules the failsafe list forbids (FAILSAFE_CONFLICT); see failsafe.ts. */
  check?: (rule: PolicyRule) => void;
  log?: { error(details: object, message: string): void };
  /** Whether a named list exists (rules may reference lists as "list:NAME"); none by default. */
  listExists?: (name: string) => boolean;
}

/** The lists a rule references, with the field that names each. */
export const listsOf = (rule: RuleSpec): Array<{ field: 'src' | 'dst'; name: string }> => [
  ...(rule.srcList !== null ? [{ field: 'src' as const, name: rule.srcList }] : []),
  ...(rule.dstList !== null ? [{ field: 'dst' as const, name: rule.dstList }] : []),
];

export class RuleService {
  private readonly lock = new WriteLock();
  private readonly now: () => Date;

  constructor(
    private readonly store: RuleStore,
    private readonly engine: PolicyEngine,
    private readonly options: RuleServiceOptions = {},
  ) {
    this.now = options.now ?? (() => new Date());
  }

  /** Puts every stored rule into the kernel (start-up, interfaces attached, policy changed). */
  async installAll(): Promise<void> {
    await this.lock.run(async () => {
      for (const hook of ['ingress', 'egress'] as const) await this.engine.install(hook, this.hookRules(hook));
    });
  }

  private hookRules(hook: RuleHook, without?: number, extra?: PolicyRule): PolicyRule[] {
    const rules = this.store.allPolicyRules().filter((r) => r.hook === hook && r.id !== without);
    if (extra && extra.hook === hook) rules.push(extra);
    return rules.sort(byEvaluationOrder);
  }

  async add(input: RuleInput): Promise<PolicyRule> {
    const spec = parseRule(input, this.now());
    return this.lock.run(async () => {
      const count = this.store.allPolicyRules().filter((r) => r.hook === spec.hook).length;
      if (count >= POL_MAX_RULES) throw new CapacityError(`${spec.hook} already has ${count} rules, the data plane's limit per hook; nothing was stored`);
      const createdAt = this.now().toISOString();
      this.checkLists(spec);
      this.options.check?.({ ...spec, id: 0, createdAt });
      const rule = await this.store.transaction('cannot store the rule', () => this.store.insertPolicyRule(spec, createdAt));
      try {
        await this.engine.install(rule.hook, this.hookRules(rule.hook));
      } catch (error) {
        const undo = await collectFailures([
          () => this.store.transaction('cannot delete the rule just stored', () => void this.store.deletePolicyRule(rule.id)),
        ]);
        throw this.undone(error, undo, 'installing a rule');
      }
      return rule;
    });
  }

  async update(id: number, input: RuleInput): Promise<PolicyRule> {
    const spec = parseRule(input, this.now());
    return this.lock.run(async () => {
      const old = this.get(id);
      const rule: PolicyRule = { ...spec, id, createdAt: old.createdAt };
      this.checkLists(spec);
      this.options.check?.(rule);
      if (spec.hook !== old.hook && this.hookRules(spec.hook).length >= POL_MAX_RULES) {
        throw new CapacityError(`${spec.hook} already has ${POL_MAX_RULES} rules, the data plane's limit per hook; nothing was changed`);
      }
      await this.store.transaction('cannot store the rule', () => void this.store.replacePolicyRule(id, spec));
      // The new hook first: a rule moving hooks is held by one table throughout, so it keeps its slot (and hits).
      const hooks = [...new Set([spec.hook, old.hook])];
      try {
        for (const hook of hooks) await this.engine.install(hook, this.hookRules(hook));
      } catch (error) {
        const undo = await collectFailures([
          () => this.store.transaction('cannot put the old rule back', () => void this.store.replacePolicyRule(id, old)),
          async () => {
            for (const hook of hooks) await this.engine.install(hook, this.hookRules(hook));
          },
        ]);
        throw this.undone(error, undo, 'updating a rule');
      }
      return rule;
    });
  }

  async remove(id: number): Promise<PolicyRule> {
    return this.lock.run(async () => {
      const rule = this.get(id);
      await this.engine.install(rule.hook, this.hookRules(rule.hook, id));
      try {
        await this.store.transaction('cannot delete the rule', () => void this.store.deletePolicyRule(id));
      } catch (error) {
        const undo = await collectFailures([() => this.engine.install(rule.hook, this.hookRules(rule.hook))]);
        throw this.undone(error, undo, 'removing a rule');
      }
      return rule;
    });
  }

  /** Stores a new default policy and installs both hooks with it; on failure the old one stays. */
  async setDefaults(defaults: PolicyDefaults): Promise<PolicyDefaults> {
    return this.lock.run(async () => {
      const old = this.engine.defaultPolicy;
      await this.store.transaction('cannot store the default policy', () => this.store.setSetting(POLICY_SETTING, defaults));
      this.engine.setDefaults(defaults);
      try {
        for (const hook of ['ingress', 'egress'] as const) await this.engine.install(hook, this.hookRules(hook));
      } catch (error) {
        this.engine.setDefaults(old);
        const undo = await collectFailures([
          () => this.store.transaction('cannot put the old default policy back', () => this.store.setSetting(POLICY_SETTING, old)),
          async () => {
            for (const hook of ['ingress', 'egress'] as const) await this.engine.install(hook, this.hookRules(hook));
          },
        ]);
        throw this.undone(error, undo, 'changing the default policy');
      }
      return this.engine.defaultPolicy;
    });
  }

  /**
   * Removes rules whose expiresAt has passed, from the kernel and the store
   * (the kernel already skips them: their expiry is in the rule's value).
   * Returns the ids removed.
   */
  async sweepExpired(): Promise<number[]> {
    const now = this.now().getTime();
    const expired = this.store.allPolicyRules().filter((r) => r.expiresAt !== null && Date.parse(r.expiresAt) <= now);
    if (expired.length === 0) return [];
    return this.lock.run(async () => {
      const ids = new Set(expired.map((r) => r.id));
      const hooks = [...new Set(expired.map((r) => r.hook))];
      for (const hook of hooks) await this.engine.install(hook, this.hookRules(hook).filter((r) => !ids.has(r.id)));
      try {
        await this.store.transaction('cannot delete expired rules', () => {
          for (const id of ids) this.store.deletePolicyRule(id);
        });
      } catch (error) {
        const undo = await collectFailures(hooks.map((hook) => () => this.engine.install(hook, this.hookRules(hook))));
        throw this.undone(error, undo, 'removing expired rules');
      }
      return [...ids];
    });
  }

  /** A rule may only name lists that exist (checked under the lock: a list a rule uses cannot be deleted). */
  private checkLists(spec: RuleSpec): void {
    for (const { field, name } of listsOf(spec)) {
      if (!(this.options.listExists?.(name) ?? false)) throw new InvalidRuleError(field, `${field}: ${listRef(name)}: no list named ${name} (create it with PUT /v1/lists/${name})`);
    }
  }

  /** The rules as lists see them: which use a list, and their recompile after a list changes. */
  get listUsers(): ListUsers {
    return {
      exclusive: (work) => this.lock.run(work),
      usedBy: (name) => this.store.allPolicyRules().filter((r) => r.srcList === name || r.dstList === name).map((r) => r.id),
      refresh: async (name) => {
        const hooks = new Set(this.store.allPolicyRules().filter((r) => r.srcList === name || r.dstList === name).map((r) => r.hook));
        for (const hook of hooks) await this.engine.install(hook, this.hookRules(hook));
      },
    };
  }

  get(id: number): PolicyRule {
    const rule = this.store.getPolicyRule(id);
    if (!rule) throw new NotFoundError(`no rule with id ${id}`);
    return rule;
  }

  list(query: RuleListQuery = {}): { items: PolicyRule[]; total: number } {
    const limit = query.limit ?? DEFAULT_RULE_PAGE;
    const offset = query.offset ?? 0;
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_RULE_PAGE) {
      throw new InvalidArgumentError(`limit must be an integer from 1 to ${MAX_RULE_PAGE}`);
    }
    if (!Number.isInteger(offset) || offset < 0) throw new InvalidArgumentError('offset must be a non-negative integer');
    return this.store.listPolicyRules({ hook: query.hook, iface: query.iface, limit, offset });
  }

  all(): PolicyRule[] {
    return this.store.allPolicyRules();
  }

  private undone(error: unknown, undo: unknown[], what: string): unknown {
    if (undo.length > 0) this.options.log?.error({ err: error, undoFailures: undo }, `${what} failed, and undoing it failed too`);
    return error instanceof Error ? withUndoFailures(error, undo) : error;
  }
}
