// Named lists: stored whole, enforced through the block tables.
//
// A list with action deny or allow puts one kernel entry per (direction,
// CIDR) into the same tables as blocks, with the list's own rule id
// (LIST_RULE_ID_BASE + its id, so xw_rule_stats counts per list). Several
// owners may claim one key: a block wins (its entry stays as it is), then
// deny lists before allow lists, then the older list. Each list carries its
// entries as sorted keys (keys.ts): a replace merges the old and the new
// version's keys, looking the other lists up by cursor, with no per-entry map.
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
import { TimeSlicer, type Slicer } from '../event-loop.js';
import {
  InvalidArgumentError, ListInUseError, ManagedByFileError, NotFoundError, RevisionMismatchError,
} from '../errors.js';
import { checkListName, type ListAction, type ListOrigin, type ListView } from './model.js';
import { EntrySet, parseEntry, type ParsedEntries } from './parse.js';
import {
  AscendingProbe, EMPTY_KEYS, canonicalV4Key, hasKey, holdsKey, keyCount, keyOfCidr, keyOfText, keyTexts, v4KeyAddress,
  v4KeyPrefixLen, v4KeyText, type EntryKeys,
} from './keys.js';
import { StoredList, type ListFields, type ListStore } from './store.js';

/** Where a change of a list is: storing it, then its entries going to the kernel (done of total). */
export interface ListProgress {
  phase: 'store' | 'kernel';
  done: number;
  total: number;
}

export interface ListKernel {
  /** Runs `work` with no other change of the block tables in between. */
  exclusive<T>(work: () => Promise<T>): Promise<T>;
  /** With holdFilter, IPv4 host routes it installs are enforced from the next call without it (CidrMaps.applyDiff). */
  applyDiff(diff: KernelDiff, options?: { holdFilter?: boolean }): Promise<void>;
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
  /** A slicer per change, for the diff's long loops (default: TimeSlicer); tests count the turns. */
  slicer?: () => Slicer;
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

export class ListService {
  private readonly lock = new WriteLock();
  private readonly byName = new Map<string, StoredList>();
  /** Changes under way, by list name (progress()). */
  private readonly inFlight = new Map<string, ListProgress>();
  private readonly byId = new Map<number, StoredList>();
  private readonly now: () => Date;
  private readonly slicer: () => Slicer;
  private users: ListUsers;

  constructor(
    private readonly store: ListStore,
    private readonly kernel: ListKernel,
    private readonly options: ListServiceOptions = {},
  ) {
    this.now = options.now ?? (() => new Date());
    this.slicer = options.slicer ?? (() => new TimeSlicer());
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
      name: list.name, action: list.action, direction: list.direction, comment: list.comment, count: list.count,
      revision: list.revision, updatedAt: list.updatedAt, origin: list.origin,
      hits: { packets: Number(hits.packets), bytes: Number(hits.bytes) },
    };
  }

  /** A page of a list's entries, optionally only those containing an address. */
  entries(name: string, query: { limit: number; offset: number; contains?: string }): { items: string[]; total: number } {
    const { keys, count } = this.get(name);
    const end = query.offset + query.limit;
    if (query.contains === undefined) return { items: keyTexts(keys, query.offset, end), total: count };
    const held = prefixesContaining(query.contains).map(keyOfText).filter((key) => holdsKey(keys, key));
    // In the list's order: IPv4 keys ascending, then IPv6 texts ascending.
    const v4 = held.filter((key): key is number => typeof key === 'number').sort((a, b) => a - b);
    const v6 = held.filter((key): key is string => typeof key === 'string').sort();
    const texts = [...v4.map(v4KeyText), ...v6];
    return { items: texts.slice(query.offset, end), total: texts.length };
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
        keys: input.entries.keys,
        origin: options.origin ?? 'api',
      });
    });
  }

  /** Adds and removes entries in one change: all of it or nothing. */
  async patch(name: string, delta: { add?: readonly string[]; remove?: readonly string[] }, options: ChangeOptions = {}): Promise<ListResult> {
    return this.lock.run(async () => {
      const current = this.get(name);
      this.checkChange(name, current, options);
      const removed = new Set<number | string>();
      (delta.remove ?? []).forEach((entry, i) => removed.add(keyOfCidr(parseEntry(entry, `remove[${i}]`))));
      const set = new EntrySet();
      for (const key of current.keys.v4) if (!removed.has(key)) set.addKey(key);
      for (const key of current.keys.v6) if (!removed.has(key)) set.addKey(key);
      (delta.add ?? []).forEach((entry, i) => set.addInput(entry, `add[${i}]`));
      const { keys } = set.finish();
      const { action, direction, comment } = current;
      return this.replace(name, current, { action, direction, comment, keys, origin: options.origin ?? current.origin });
    });
  }

  async delete(name: string, options: ChangeOptions = {}): Promise<void> {
    return this.lock.run(async () => {
      const current = this.get(name);
      this.checkChange(name, current, options);
      await this.users.exclusive(() => this.tracked(name, current.keys, async () => {
        const rules = this.users.usedBy(name);
        if (rules.length > 0) throw new ListInUseError(`list ${name} is used by rule${rules.length === 1 ? '' : 's'} ${rules.join(', ')}: change or delete them first`);
        const diff = await this.diff(current, undefined);
        try {
          await this.store.delete(name);
        } catch (error) {
          this.restore(current, undefined);
          throw error;
        }
        await this.applyOrResync(diff, async () => {
          this.restore(current, undefined);
          await this.store.save(current);
        }, name);
      }));
    });
  }

  /** The kernel entry a key's lists want when no block holds it (CidrMaps.setListClaims). */
  claim(direction: BlockDirection, cidr: string): KernelRule | undefined {
    if (this.byId.size === 0) return undefined;
    const key = keyOfText(cidr);
    const winner = this.winner(direction, key);
    return winner === undefined ? undefined : kernelRule(winner, direction, key);
  }

  /** Appends the list entries the kernel must hold (keys no block holds) to start-up's columns. */
  appendKernelRows(columns: RuleColumns, blocked: (direction: BlockDirection, cidrs: string[]) => Set<string>): void {
    const network = Buffer.alloc(4);
    for (const direction of ['src', 'dst'] as const) {
      const lists = byStrength([...this.byId.values()].filter((list) => holds(list, direction)));
      const texts: string[] = [];
      const winners: StoredList[] = [];
      lists.forEach((list, i) => {
        const stronger = lists.slice(0, i);
        for (const key of list.keys.v4) {
          if (stronger.some((other) => hasKey(other.keys.v4, key))) continue;
          texts.push(v4KeyText(key));
          winners.push(list);
        }
        for (const key of list.keys.v6) {
          if (stronger.some((other) => hasKey(other.keys.v6, key))) continue;
          texts.push(key);
          winners.push(list);
        }
      });
      const held = blocked(direction, texts);
      texts.forEach((text, i) => {
        if (held.has(text)) return;
        const list = winners[i]!;
        const v4 = canonicalV4Key(text);
        const cidr = v4 >= 0 ? undefined : parseCidr(text);
        if (cidr === undefined) network.writeUInt32BE(v4KeyAddress(v4), 0);
        columns.push(
          LIST_RULE_ID_BASE + list.id, cidr?.family ?? 4, cidr?.prefixLen ?? v4KeyPrefixLen(v4), cidr?.bytes ?? network,
          direction === 'dst', list.action === 'allow',
        );
      });
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

  private async replace(name: string, current: StoredList | undefined, next: Omit<ListFields, 'name' | 'revision' | 'updatedAt'>): Promise<ListResult> {
    if (next.action !== 'deny' && next.action !== 'allow' && next.action !== 'none') throw new InvalidArgumentError(`action must be deny, allow or none`);
    const updatedAt = this.now().toISOString();
    const revision = (current?.revision ?? 0) + 1;
    return this.users.exclusive(() => this.tracked(name, next.keys, async () => {
      const fields: ListFields = { ...next, name, revision, updatedAt };
      const id = current?.id ?? (await this.store.save(fields));
      const list = new StoredList(id, fields);
      const diff = await this.diff(current, list);
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
      }, name);
      return { name, count: list.count, revision, updatedAt };
    }));
  }

  /** The change of list `name` under way (PUT, PATCH, DELETE), or undefined. */
  progress(name: string): ListProgress | undefined {
    const progress = this.inFlight.get(name);
    return progress && { ...progress };
  }

  /** Runs a change of list `name` inside the kernel's exclusive section, reporting it through progress(). */
  private tracked<T>(name: string, keys: EntryKeys, work: () => Promise<T>): Promise<T> {
    return this.kernel.exclusive(async () => {
      this.inFlight.set(name, { phase: 'store', done: 0, total: keyCount(keys) });
      try {
        return await work();
      } finally {
        this.inFlight.delete(name);
      }
    });
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
  private async applyOrResync(diff: ListDiff, undo: () => void | Promise<void>, name: string): Promise<void> {
    try {
      await this.apply(diff, this.inFlight.get(name));
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
   * Moves the index from `before` to `after` (versions of one list, either
   * may be absent) and returns what the kernel must change: keys whose
   * winner changed, but not keys a block holds. One merge of the two sorted
   * key arrays, with a cursor into each other list of the direction.
   */
  private async diff(before: StoredList | undefined, after: StoredList | undefined): Promise<ListDiff> {
    const id = (before ?? after)!.id;
    const others = [...this.byId.values()].filter((list) => list.id !== id);
    if (before) this.index(before, -1);
    if (after) this.index(after, +1);
    const parts: ListDiff = [];
    const slicer = this.slicer();
    for (const direction of ['src', 'dst'] as const) {
      const rivals = byStrength(others.filter((list) => holds(list, direction)));
      const was = holds(before, direction) ? before : undefined;
      const now = holds(after, direction) ? after : undefined;
      if (!was && !now) continue;
      const oldKeys = was?.keys ?? EMPTY_KEYS;
      const newKeys = now?.keys ?? EMPTY_KEYS;
      // Per family apart: IPv4 keys stay unboxed doubles.
      for (const changes of [
        await sweep(was, now, rivals, rivals.map((list) => list.keys.v4), oldKeys.v4, newKeys.v4, new Float64Array(oldKeys.v4.length + newKeys.v4.length), slicer),
        await sweep(was, now, rivals, rivals.map((list) => list.keys.v6), oldKeys.v6, newKeys.v6, [], slicer),
      ] as Array<Changes<number | string>>) {
        if (changes.count > 0) parts.push({ direction, changes, blocked: this.blockedAmong(direction, changes.keys, changes.count) });
      }
    }
    return parts;
  }

  /**
   * Applies a diff: every new and replaced entry first, removals after, so
   * no address both lists hold is ever unfiltered. In chunks of kernel
   * entries, which are garbage once their chunk is in (a million of them
   * held at once cost more in GC than the kernel writes); the IPv4 host
   * routes a pass installs are enforced at its end, when the host filter is
   * written once for all its chunks.
   */
  private async apply(diff: ListDiff, progress?: ListProgress): Promise<void> {
    if (progress) Object.assign(progress, { phase: 'kernel', done: 0, total: diff.reduce((n, d) => n + d.changes.count, 0) });
    for (const removals of [false, true]) {
      let chunk: MutableDiff = { install: [], replace: [], remove: [] };
      let size = 0;
      /** Entries of this pass examined since the last write (those a block holds are skipped, and done too). */
      let examined = 0;
      /**
       * A full chunk is written when the pass has another entry for the
       * kernel, so the pass's last write is never empty: it also writes the
       * host filter words its chunks held.
       */
      const write = async (last: boolean): Promise<void> => {
        if (size > 0) await this.kernel.applyDiff(chunk, { holdFilter: !last });
        if (progress) progress.done += examined;
        chunk = { install: [], replace: [], remove: [] };
        size = 0;
        examined = 0;
      };
      for (const { direction, changes, blocked } of diff) {
        const { keys, from, to, parties } = changes;
        for (let i = 0; i < changes.count; i++) {
          if ((to[i] === 0) !== removals) continue;
          const key = keys[i]!;
          if (blocked(key)) {
            examined++;
            continue;
          }
          if (size === APPLY_CHUNK) await write(false);
          examined++;
          const next = to[i] === 0 ? undefined : kernelRule(parties[to[i]!]!, direction, key);
          const old = from[i] === 0 ? undefined : kernelRule(parties[from[i]!]!, direction, key);
          if (old && next) chunk.replace.push({ from: old, to: next });
          else if (next) chunk.install.push(next);
          else if (old) chunk.remove.push(old);
          size++;
        }
      }
      await write(true);
    }
  }


  /** Whether a block of `direction` holds a key, asked for each of `keys`: the blocks' keys or an IN query, whichever is fewer. */
  private blockedAmong(direction: BlockDirection, keys: ArrayLike<number | string>, count: number): (key: number | string) => boolean {
    const total = this.store.blockCount(direction);
    if (total === 0) return () => false;
    if (total <= count) {
      const blocks = this.store.blockKeys(direction);
      return (key) => (typeof key === 'number' ? hasKey(blocks.v4, key) : hasKey(blocks.v6, key));
    }
    const held = this.store.blockedAmong(direction, Array.from({ length: count }, (_, i) => keyText(keys[i]!)));
    return (key) => held.has(keyText(key));
  }

  /** The list whose entry the kernel holds for a key (blocks aside): deny before allow, then the oldest. */
  private winner(direction: BlockDirection, key: number | string): StoredList | undefined {
    let best: StoredList | undefined;
    for (const list of this.byId.values()) {
      if (!holds(list, direction)) continue;
      if (holdsKey(list.keys, key)) best = stronger(best, list);
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
  }
}

/** Whether a list puts entries of `direction` into the kernel. */
const holds = (list: StoredList | undefined, direction: BlockDirection): list is StoredList =>
  list !== undefined && list.action !== 'none' && list.direction === direction;

/** Lower is stronger: deny lists before allow lists, then the older list. */
const strength = (list: StoredList): number => (list.action === 'deny' ? 0 : 2 ** 32) + list.id;

const stronger = (a: StoredList | undefined, b: StoredList | undefined): StoredList | undefined =>
  !a ? b : !b ? a : strength(a) <= strength(b) ? a : b;

const byStrength = (lists: StoredList[]): StoredList[] => lists.sort((a, b) => strength(a) - strength(b));

/** What the kernel holds for a key when this list wins it (0: nothing). */
const verdictOf = (list: StoredList | undefined): number => (list ? list.id * 2 + (list.action === 'allow' ? 1 : 0) : 0);

const keyText = (key: number | string): string => (typeof key === 'number' ? v4KeyText(key) : key);

type MutableDiff = { install: KernelRule[]; replace: Array<{ from: KernelRule; to: KernelRule }>; remove: KernelRule[] };

/** Keys between looks at the slicer. */
const KEYS_PER_LOOK = 4096;

/**
 * Kernel entries per applyDiff call: small enough that they die young and
 * the event loop runs between calls; 16,384 measured faster than 65,536 and
 * than one call for a 1M replace (noisy 2-core box, see the commit).
 */
const APPLY_CHUNK = 1 << 14;

/** A list change for the kernel: per direction and family, the keys whose winner changes. */
type ListDiff = Array<{ direction: BlockDirection; changes: Changes<number | string>; blocked: (key: number | string) => boolean }>;

/**
 * Keys whose winner changes, with the old and new winner as indices into
 * `parties` (0: none), in arrays sized once: no object per key.
 */
class Changes<K extends number | string> {
  count = 0;
  readonly from: Uint32Array;
  readonly to: Uint32Array;

  constructor(
    readonly parties: ReadonlyArray<StoredList | undefined>,
    /** Room for as many keys as `from` and `to` get. */
    readonly keys: { [i: number]: K; length: number },
  ) {
    this.from = new Uint32Array(keys.length);
    this.to = new Uint32Array(keys.length);
  }

  push(key: K, from: number, to: number): void {
    const i = this.count++;
    this.keys[i] = key;
    this.from[i] = from;
    this.to[i] = to;
  }
}

/**
 * The keys of one family and direction whose winner changes when `was`
 * becomes `now` (the other lists, `rivals`, strongest first, stay), written
 * into `room` (a Float64Array as long as both key arrays, or a string array).
 * Gives the event loop back when the slicer says (2M keys take longer than a slice).
 */
async function sweep<K extends number | string>(
  was: StoredList | undefined, now: StoredList | undefined, rivals: readonly StoredList[], rivalKeys: ReadonlyArray<ArrayLike<K>>,
  oldKeys: ArrayLike<K>, newKeys: ArrayLike<K>, room: { [i: number]: K; length: number }, slicer: Slicer,
): Promise<Changes<K>> {
  // Parties: 0 none, 1 was, 2 now, 3.. the rivals.
  const parties = [undefined, was, now, ...rivals];
  if (!(room instanceof Float64Array)) room.length = oldKeys.length + newKeys.length;
  const changes = new Changes<K>(parties, room);
  const probes = rivalKeys.map((keys) => new AscendingProbe(keys));
  const same = was !== undefined && now !== undefined && verdictOf(was) === verdictOf(now);
  const winner = (rival: number, mine: number): number => {
    if (rival === 0 || mine === 0) return rival + mine;
    return strength(parties[mine]!) < strength(parties[rival]!) ? mine : rival;
  };
  // The union of both ascending key arrays, in order.
  let i = 0;
  let j = 0;
  for (let n = 1; i < oldKeys.length || j < newKeys.length; n++) {
    const inOld = j === newKeys.length || (i < oldKeys.length && oldKeys[i]! <= newKeys[j]!);
    const inNew = i === oldKeys.length || (j < newKeys.length && newKeys[j]! <= oldKeys[i]!);
    const key = inOld ? oldKeys[i++]! : newKeys[j]!;
    if (inNew) j++;
    if (n % KEYS_PER_LOOK === 0 && slicer.due) await slicer.next();
    if (inOld && inNew && same) continue;
    let rival = 0;
    for (let r = 0; r < probes.length; r++) {
      if (probes[r]!.has(key)) {
        rival = 3 + r;
        break;
      }
    }
    const from = winner(rival, inOld ? 1 : 0);
    const to = winner(rival, inNew ? 2 : 0);
    if (verdictOf(parties[from]) !== verdictOf(parties[to])) changes.push(key, from, to);
  }
  return changes;
}

/**
 * A list entry as the kernel writer takes it. Made by the million on a
 * replace and held until the kernel has the change, so it carries only its
 * key: the text and the IPv4 address (bytes or number) are made when asked for.
 */
class ListEntryRule implements KernelRule {
  constructor(
    readonly id: number,
    private readonly key: number | string,
    readonly family: 4 | 6,
    readonly prefixLen: number,
    private readonly v6Network: Buffer | undefined,
    readonly direction: BlockDirection,
    readonly allow: boolean,
  ) {}

  get cidr(): string {
    return keyText(this.key);
  }

  get v4Network(): number | undefined {
    return this.family === 4 ? v4KeyAddress(this.key as number) : undefined;
  }

  get network(): Buffer {
    if (this.v6Network) return this.v6Network;
    const network = Buffer.allocUnsafe(4);
    network.writeUInt32BE(v4KeyAddress(this.key as number), 0);
    return network;
  }

  get comment(): null {
    return null;
  }

  get createdAt(): string {
    return '';
  }
}

/** The kernel entry of `list` for a key. */
function kernelRule(list: StoredList, direction: BlockDirection, key: number | string): KernelRule {
  const id = LIST_RULE_ID_BASE + list.id;
  const allow = list.action === 'allow';
  if (typeof key === 'string') {
    const cidr = parseCidr(key);
    return new ListEntryRule(id, key, 6, cidr.prefixLen, cidr.bytes, direction, allow);
  }
  return new ListEntryRule(id, key, 4, v4KeyPrefixLen(key), undefined, direction, allow);
}
