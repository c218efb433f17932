// Named lists: stored whole, enforced through the block tables.
//
// A list with action deny or allow puts one kernel entry per (direction,
// CIDR) into the same tables as blocks, with the list's own rule id
// (LIST_RULE_ID_BASE + its id, so xw_rule_stats counts per list). Several
// owners may claim one key: a block wins (its entry stays as it is), then
// deny lists before allow lists, then the older list. `owners` keeps, per
// key any action list holds, the ids of those lists.
//
// A replace is one diff against what the kernel holds, applied new and
// replaced values first and removals last (CidrMaps.applyDiff): an address
// in both the old and the new list is never unfiltered, not for a moment,
// and every other address changes once, from its old verdict to its new one.
// The order of a change: diff computed -> row committed -> kernel diff; if
// the kernel refuses, the row and the index go back and the kernel is
// reconciled to the store (blocks and lists) as at start-up.
import { LIST_RULE_ID_BASE } from '../datapath/abi.js';
import type { Counter } from '../datapath/abi.js';
import type { KernelDiff, KernelRule } from '../datapath/cidr-maps.js';
import { parseCidr } from '../rules/cidr.js';
import { prefixesContaining } from '../rules/blocks.js';
import type { BlockDirection } from '../rules/model.js';
import type { RuleColumns } from '../rules/rule-columns.js';
import { WriteLock } from '../rules/write-lock.js';
import {
  InvalidArgumentError, ListInUseError, ManagedByFileError, NotFoundError, RevisionMismatchError,
} from '../errors.js';
import { checkListName, type ListAction, type ListOrigin, type ListView } from './model.js';
import { EntrySet, parseEntry, type ParsedEntries } from './parse.js';
import type { ListStore, StoredList } from './store.js';

export interface ListKernel {
  /** Runs `work` with no other change of the block tables in between. */
  exclusive<T>(work: () => Promise<T>): Promise<T>;
  applyDiff(diff: KernelDiff): Promise<void>;
  /** Makes the kernel hold exactly the store's blocks and lists (start-up's path). */
  resync(): Promise<void>;
  hits(ruleId: number): Counter;
}

/**
 * The policy rules that reference lists ("src": "list:NAME"). A change of a
 * list runs inside `exclusive`, so no rule is added, changed or removed in
 * between: the rules that use the list are recompiled with its new entries
 * before the change returns, and a list a rule uses is never deleted.
 */
export interface ListUsers {
  exclusive<T>(work: () => Promise<T>): Promise<T>;
  /** Ids of the rules that reference the list. */
  usedBy(name: string): number[];
  /** Recompiles the rule tables that reference the list with what the index holds now (inside exclusive). */
  refresh(name: string): Promise<void>;
}

export interface ListServiceOptions {
  now?: () => Date;
  /** The policy rules (set later with useRules when they are built after the lists); none by default. */
  users?: ListUsers;
  log?: { error(details: object, message: string): void };
}

export interface ListPut {
  entries: ParsedEntries;
  action?: ListAction;
  direction?: BlockDirection;
  comment?: string | null;
}

export interface ChangeOptions {
  /** The revision the caller last saw (If-Match). */
  ifMatch?: number;
  /** Who makes the change; only the --rules file may change its lists. */
  origin?: ListOrigin;
}

export interface ListResult {
  name: string;
  count: number;
  revision: number;
  updatedAt: string;
}

const keyOf = (direction: BlockDirection, text: string): string => (direction === 'src' ? 's' : 'd') + text;

export class ListService {
  private readonly lock = new WriteLock();
  private readonly byName = new Map<string, StoredList>();
  private readonly byId = new Map<number, StoredList>();
  /** Per key an action list holds: the ids of the lists that hold it. */
  private readonly owners = new Map<string, number | number[]>();
  private readonly now: () => Date;
  private users: ListUsers;

  constructor(
    private readonly store: ListStore,
    private readonly kernel: ListKernel,
    private readonly options: ListServiceOptions = {},
  ) {
    this.now = options.now ?? (() => new Date());
    this.users = options.users ?? { exclusive: (work) => work(), usedBy: () => [], refresh: async () => undefined };
    for (const list of store.all()) this.index(list, +1);
  }

  /** Wires the policy rules that reference lists (see ListUsers). */
  useRules(users: ListUsers): void {
    this.users = users;
  }

  all(): StoredList[] {
    return [...this.byName.values()];
  }

  get(name: string): StoredList {
    const list = this.byName.get(name);
    if (!list) throw new NotFoundError(`no list named ${name}`);
    return list;
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  view(list: StoredList): ListView {
    const hits = this.kernel.hits(LIST_RULE_ID_BASE + list.id);
    return {
      name: list.name, action: list.action, direction: list.direction, comment: list.comment, count: list.texts.length,
      revision: list.revision, updatedAt: list.updatedAt, origin: list.origin,
      hits: { packets: Number(hits.packets), bytes: Number(hits.bytes) },
    };
  }

  /** A page of a list's entries, optionally only those containing an address. */
  entries(name: string, query: { limit: number; offset: number; contains?: string }): { items: string[]; total: number } {
    const list = this.get(name);
    let texts = list.texts;
    if (query.contains !== undefined) {
      const wanted = new Set(prefixesContaining(query.contains));
      texts = texts.filter((t) => wanted.has(t));
    }
    return { items: texts.slice(query.offset, query.offset + query.limit), total: texts.length };
  }

  /** Replaces (or creates) a list as a whole. */
  async put(name: string, input: ListPut, options: ChangeOptions = {}): Promise<ListResult> {
    checkListName(name);
    return this.lock.run(async () => {
      const current = this.byName.get(name);
      this.checkChange(name, current, options);
      return this.replace(name, current, {
        action: input.action ?? 'deny',
        direction: input.direction ?? 'src',
        comment: input.comment ?? null,
        texts: input.entries.texts,
        origin: options.origin ?? 'api',
      });
    });
  }

  /** Adds and removes entries in one change: all of it or nothing. */
  async patch(name: string, delta: { add?: readonly string[]; remove?: readonly string[] }, options: ChangeOptions = {}): Promise<ListResult> {
    return this.lock.run(async () => {
      const current = this.get(name);
      this.checkChange(name, current, options);
      const removed = new Set<string>();
      (delta.remove ?? []).forEach((entry, i) => removed.add(parseEntry(entry, `remove[${i}]`).text));
      const set = new EntrySet();
      for (const text of current.texts) if (!removed.has(text)) set.add(parseCidr(text));
      (delta.add ?? []).forEach((entry, i) => set.add(parseEntry(entry, `add[${i}]`)));
      return this.replace(name, current, { ...current, texts: set.texts, origin: options.origin ?? current.origin });
    });
  }

  async delete(name: string, options: ChangeOptions = {}): Promise<void> {
    return this.lock.run(async () => {
      const current = this.get(name);
      this.checkChange(name, current, options);
      await this.users.exclusive(() => this.kernel.exclusive(async () => {
        const rules = this.users.usedBy(name);
        if (rules.length > 0) throw new ListInUseError(`list ${name} is used by rule${rules.length === 1 ? '' : 's'} ${rules.join(', ')}: change or delete them first`);
        const diff = this.diff(current, undefined);
        try {
          await this.store.delete(name);
        } catch (error) {
          this.restore(current, undefined);
          throw error;
        }
        await this.applyOrResync(diff, async () => {
          this.restore(current, undefined);
          await this.store.save(current);
        });
      }));
    });
  }

  /** The kernel entry a key's lists want when no block holds it (CidrMaps.setListClaims). */
  claim(direction: BlockDirection, cidr: string): KernelRule | undefined {
    const winner = this.winner(keyOf(direction, cidr));
    return winner === undefined ? undefined : kernelRule(winner, direction, cidr);
  }

  /** Appends the list entries the kernel must hold (keys no block holds) to start-up's columns. */
  appendKernelRows(columns: RuleColumns, blocked: (direction: BlockDirection, cidrs: string[]) => Set<string>): void {
    const perDirection: Record<BlockDirection, string[]> = { src: [], dst: [] };
    for (const key of this.owners.keys()) perDirection[key[0] === 's' ? 'src' : 'dst'].push(key.slice(1));
    for (const direction of ['src', 'dst'] as const) {
      const held = blocked(direction, perDirection[direction]);
      for (const text of perDirection[direction]) {
        if (held.has(text)) continue;
        const list = this.winner(keyOf(direction, text))!;
        const cidr = parseCidr(text);
        columns.push(LIST_RULE_ID_BASE + list.id, cidr.family, cidr.prefixLen, cidr.bytes, direction === 'dst', list.action === 'allow');
      }
    }
  }

  private checkChange(name: string, current: StoredList | undefined, options: ChangeOptions): void {
    if (options.ifMatch !== undefined && current?.revision !== options.ifMatch) {
      throw new RevisionMismatchError(`list ${name} is at revision ${current?.revision ?? 'none (it does not exist)'}, not ${options.ifMatch}`);
    }
    if (current?.origin === 'file' && options.origin !== 'file') {
      throw new ManagedByFileError(`list ${name} comes from the --rules file: change it there`);
    }
  }

  private async replace(name: string, current: StoredList | undefined, next: Omit<StoredList, 'id' | 'name' | 'revision' | 'updatedAt'>): Promise<ListResult> {
    if (next.action !== 'deny' && next.action !== 'allow' && next.action !== 'none') throw new InvalidArgumentError(`action must be deny, allow or none`);
    const updatedAt = this.now().toISOString();
    const revision = (current?.revision ?? 0) + 1;
    return this.users.exclusive(() => this.kernel.exclusive(async () => {
      const id = current?.id ?? (await this.store.save({ ...next, name, revision, updatedAt }));
      const list: StoredList = { ...next, id, name, revision, updatedAt };
      const diff = this.diff(current, list);
      const undo = async () => {
        this.restore(current, list);
        if (current) await this.store.save(current);
        else await this.store.delete(name);
      };
      try {
        if (current) await this.store.save(list);
      } catch (error) {
        this.restore(current, list);
        throw error;
      }
      // Rules first: a list too big for their tables (507) is refused before the block tables change.
      const used = current !== undefined && this.users.usedBy(name).length > 0;
      if (used) {
        try {
          await this.users.refresh(name);
        } catch (error) {
          await this.undoRefresh(name, undo, error);
          throw error;
        }
      }
      await this.applyOrResync(diff, async () => {
        await undo();
        if (used) await this.users.refresh(name);
      });
      return { name, count: list.texts.length, revision, updatedAt };
    }));
  }

  /** The rules' tables refused the new list: the old one goes back in the index, the store and (unchanged or restored) the rules' tables. */
  private async undoRefresh(name: string, undo: () => Promise<void>, error: unknown): Promise<void> {
    try {
      await undo();
      await this.users.refresh(name);
    } catch (undoError) {
      this.options.log?.error({ err: error, undoError }, `list ${name}: its rules refused the change, and undoing it failed too`);
    }
  }

  /** Applies a diff; on failure undoes the store and the index, then reconciles the kernel to them. */
  private async applyOrResync(diff: KernelDiff, undo: () => void | Promise<void>): Promise<void> {
    try {
      await this.kernel.applyDiff(diff);
    } catch (error) {
      try {
        await undo();
        await this.kernel.resync();
      } catch (undoError) {
        this.options.log?.error({ err: error, undoError }, 'a list change failed in the kernel, and undoing it failed too');
      }
      throw error;
    }
  }

  /** Puts `before` back in the index in place of `after`. */
  private restore(before: StoredList | undefined, after: StoredList | undefined): void {
    if (after) this.index(after, -1);
    if (before) this.index(before, +1);
  }

  /**
   * Moves the index from `before` to `after` (either may be absent) and
   * returns what the kernel must change: keys whose winner changed, but not
   * keys a block holds.
   */
  private diff(before: StoredList | undefined, after: StoredList | undefined): KernelDiff {
    const keys: string[] = [];
    const seen = new Set<string>();
    const collect = (list: StoredList | undefined) => {
      if (!list || list.action === 'none') return;
      for (const text of list.texts) {
        const key = keyOf(list.direction, text);
        if (!seen.has(key)) {
          seen.add(key);
          keys.push(key);
        }
      }
    };
    collect(before);
    collect(after);
    const was = keys.map((key) => this.winner(key));
    if (before) this.index(before, -1);
    if (after) this.index(after, +1);
    const code = (list: StoredList | undefined) => (list ? list.id * 2 + (list.action === 'allow' ? 1 : 0) : 0);
    const changed: number[] = [];
    const now: Array<StoredList | undefined> = [];
    keys.forEach((key, i) => {
      const winner = this.winner(key);
      if (code(winner) === code(was[i])) return;
      changed.push(i);
      now[i] = winner;
    });
    const install: KernelRule[] = [];
    const replace: Array<{ from: KernelRule; to: KernelRule }> = [];
    const remove: KernelRule[] = [];
    for (const direction of ['src', 'dst'] as const) {
      const mine = changed.filter((i) => (keys[i]![0] === 's') === (direction === 'src'));
      const blocked = this.store.blockedAmong(direction, mine.map((i) => keys[i]!.slice(1)));
      for (const i of mine) {
        const text = keys[i]!.slice(1);
        if (blocked.has(text)) continue;
        const from = was[i] && kernelRule(was[i]!, direction, text);
        const to = now[i] && kernelRule(now[i]!, direction, text);
        if (from && to) replace.push({ from, to });
        else if (to) install.push(to);
        else if (from) remove.push(from);
      }
    }
    return { install, replace, remove };
  }

  /** The list whose entry the kernel holds for a key (blocks aside): deny before allow, then the oldest. */
  private winner(key: string): StoredList | undefined {
    const ids = this.owners.get(key);
    if (ids === undefined) return undefined;
    if (typeof ids === 'number') return this.byId.get(ids);
    let best: StoredList | undefined;
    for (const id of ids) {
      const list = this.byId.get(id)!;
      if (!best || (list.action === 'deny' && best.action !== 'deny') || (list.action === best.action && list.id < best.id)) best = list;
    }
    return best;
  }

  private index(list: StoredList, delta: 1 | -1): void {
    if (delta > 0) {
      this.byName.set(list.name, list);
      this.byId.set(list.id, list);
    } else {
      this.byName.delete(list.name);
      this.byId.delete(list.id);
    }
    if (list.action === 'none') return;
    for (const text of list.texts) {
      const key = keyOf(list.direction, text);
      const ids = this.owners.get(key);
      if (delta > 0) {
        if (ids === undefined) this.owners.set(key, list.id);
        else if (typeof ids === 'number') this.owners.set(key, [ids, list.id]);
        else ids.push(list.id);
      } else if (ids === list.id) this.owners.delete(key);
      else if (Array.isArray(ids)) {
        const rest = ids.filter((id) => id !== list.id);
        this.owners.set(key, rest.length === 1 ? rest[0]! : rest);
      }
    }
  }
}

function kernelRule(list: StoredList, direction: BlockDirection, text: string): KernelRule {
  const cidr = parseCidr(text);
  return {
    id: LIST_RULE_ID_BASE + list.id, cidr: cidr.text, family: cidr.family, prefixLen: cidr.prefixLen, network: cidr.bytes,
    direction, comment: null, createdAt: '', ...(list.action === 'allow' && { allow: true }),
  };
}
