// Dense slots of policy rules ("rule slots" in xdp/include/xdpwall_abi.h):
// the index of a rule's hits, rate parameters and rate counters in the
// kernel's arrays, carried in its xw_pol_rule. A rule keeps its slot while
// some table holds it (hits survive a change of priority or hook); once a
// flip without it has synced, no packet counts into the slot and it is free.
// A slot is zeroed in every counter map (and its shared rate bucket) when it
// is given to a rule, so a new rule never inherits hits or a bucket (nor
// what a crash left behind).
import type { BpfMap } from '@xdpwall/addon';
import { POL_SLOTS, cpusOf, sumCounters, type Counter } from '../datapath/abi.js';
import { CapacityError } from '../errors.js';

/** A rule a table's active buffer holds, as the kernel has it (PolicyTables.installedSlots). */
export interface InstalledSlot {
  table: number;
  kernelId: number;
  slot: number;
}

const u32s = (values: readonly number[]): Buffer => {
  const b = Buffer.alloc(values.length * 4);
  values.forEach((v, i) => b.writeUInt32LE(v, i * 4));
  return b;
};

export interface SlotCounterMaps {
  /** xw_slot_hits: the rules' hits. */
  hits?: BpfMap;
  /** xw_rl_stats: ratelimit rules' admitted and dropped. */
  rateStats?: BpfMap;
  /** xw_rl_rule_buckets: ratelimit rules' shared buckets (zero: written full by RateLimitTables.prepare). */
  rateBuckets?: BpfMap;
}

export class RuleSlots {
  private readonly byRule = new Map<number, number>();
  private readonly free: number[] = [];
  private next = 1;
  /** Kernel ids each table's packets may still see (both buffers' while a flip is under way). */
  private readonly live = new Map<number, Set<number>>();

  /**
   * maps: the per-slot counters (zeroed for a new rule; either may be
   * absent in tests); installed: what the pinned tables hold now, whose
   * slots (and counters) are kept.
   */
  constructor(
    private readonly maps: SlotCounterMaps,
    installed: Iterable<InstalledSlot> = [],
  ) {
    const taken = new Set<number>();
    for (const { table, kernelId, slot } of installed) {
      if (kernelId === 0 || slot <= 0 || slot >= POL_SLOTS) continue;
      const had = this.byRule.get(kernelId);
      if (had === undefined) {
        if (taken.has(slot)) continue; // two rules on one slot: never written so; the second gets a new one
        this.byRule.set(kernelId, slot);
        taken.add(slot);
      } else if (had !== slot) {
        continue;
      }
      this.liveOf(table).add(kernelId);
    }
    this.next = Math.max(0, ...taken) + 1;
    for (let s = this.next - 1; s >= 1; s--) if (!taken.has(s)) this.free.push(s);
  }

  private liveOf(table: number): Set<number> {
    let set = this.live.get(table);
    if (!set) this.live.set(table, (set = new Set()));
    return set;
  }

  /** The slot of a rule some table holds (or is about to), if any. */
  slotOf(kernelId: number): number | undefined {
    return this.byRule.get(kernelId);
  }

  /** Slots in use: rules some table holds, or held until their flip synced. */
  get used(): number {
    return this.byRule.size;
  }

  /**
   * Before `table` flips to hold `kernelIds` (0: not counted, no slot):
   * gives the rules without one a zeroed slot. Until committed(), the
   * table's packets may see the old rules and the new ones.
   */
  async assign(table: number, kernelIds: readonly number[]): Promise<Map<number, number>> {
    const fresh: number[] = [];
    const out = new Map<number, number>();
    try {
      for (const id of kernelIds) {
        if (id === 0 || out.has(id)) continue;
        let slot = this.byRule.get(id);
        if (slot === undefined) {
          slot = this.take();
          this.byRule.set(id, slot);
          fresh.push(id);
        }
        out.set(id, slot);
      }
      await this.zero(fresh.map((id) => this.byRule.get(id)!));
    } catch (error) {
      for (const id of fresh) this.release(id);
      throw error;
    }
    const live = this.liveOf(table);
    for (const id of out.keys()) live.add(id);
    return out;
  }

  /**
   * After `table`'s flip to `kernelIds` synced (no packet reads the old
   * buffer): frees the slots of rules no table holds any more.
   */
  committed(table: number, kernelIds: readonly number[]): void {
    this.live.set(table, new Set(kernelIds.filter((id) => id !== 0)));
    for (const id of [...this.byRule.keys()]) {
      if (![...this.live.values()].some((set) => set.has(id))) this.release(id);
    }
  }

  /** A rule's hits (packets, bytes) summed over CPUs; zero for a rule without a slot. */
  hits(kernelId: number): Counter {
    const slot = this.byRule.get(kernelId);
    const map = this.maps.hits;
    const value = slot !== undefined && map ? map.lookup(u32s([slot])) : null;
    return value && map ? sumCounters(value, 0, map.valueStride, cpusOf(map)) : { packets: 0n, bytes: 0n };
  }

  private take(): number {
    const slot = this.free.pop() ?? (this.next < POL_SLOTS ? this.next++ : undefined);
    if (slot === undefined) {
      throw new CapacityError(`all ${POL_SLOTS - 1} rule counter slots are in use; nothing was changed`);
    }
    return slot;
  }

  private release(kernelId: number): void {
    const slot = this.byRule.get(kernelId);
    if (slot === undefined) return;
    this.byRule.delete(kernelId);
    this.free.push(slot);
  }

  private async zero(slots: readonly number[]): Promise<void> {
    if (slots.length === 0) return;
    const keys = u32s(slots);
    for (const map of [this.maps.hits, this.maps.rateStats, this.maps.rateBuckets]) {
      if (!map) continue;
      await map.updateBatch(keys, Buffer.alloc(slots.length * map.valueStride), slots.length);
    }
  }
}
