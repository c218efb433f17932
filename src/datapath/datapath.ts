// Loads the data plane and keeps it on the interfaces through pinned
// bpf_links: XDP on ingress, tcx on egress. Stopping the daemon leaves the
// links, so the kernel keeps enforcing with the pinned maps; the next start
// loads the programs again, fills their maps, and swaps them into the links
// (see pins.ts for what is reused and hooks.ts for ownership).
import { closeSync, existsSync, mkdirSync, rmSync } from 'node:fs';
import { basename, join } from 'node:path';
import {
  BpfError,
  BpfObject,
  ensureBpffs,
  ifindex as resolveIfindex,
  linkCreate,
  linkDetach,
  linkInfo,
  numPossibleCpus,
  xdpQuery,
  type BpfMap,
  type BpfProgram,
  type XdpMode,
} from '@xdpwall/addon';
import { IFSLOT_IFINDEX_MAX, MAPS, POLICY_MAPS, PROGRAMS, RATELIMIT_MAPS, STATS_IFSLOTS, STATS_REASONS, statsIndex } from './abi.js';
import { policyMapsOf, type PolicyMaps } from '../policy/tables.js';
import { applyV6Capacity, v6MapsOf, type V6Maps } from './v6-lengths.js';
import { rateLimitMapsOf, type RateLimitMaps } from '../ratelimit/tables.js';
import { EVENT_MAPS } from '../events/abi.js';
import type { EventMaps } from '../events/hub.js';
import type { AttachMode, Config, InterfaceConfig } from '../config.js';
import type { Logger } from '../logger.js';
import { DatapathError, XdpwallError } from '../errors.js';
import { explainLoadFailure } from './load-errors.js';
import { mapMemory, type MapMemory } from './memory.js';
import { lockDirectory, type DirLock } from '../lock.js';
import { linkPinName, linksDir, mapsDirName, removePins, retiredPins } from './pins.js';
import {
  claimXdpHook, createXdpLink, detachPinnedLink, linkIsLive, pinnedLinks, putOnHook, type OwnedLink, type Program,
} from './hooks.js';

export interface DatapathMaps {
  srcV4: BpfMap;
  dstV4: BpfMap;
  srcV6: BpfMap;
  dstV6: BpfMap;
  srcHostV4: BpfMap;
  dstHostV4: BpfMap;
  srcHostV6: BpfMap;
  dstHostV6: BpfMap;
  srcDir24: BpfMap;
  dstDir24: BpfMap;
  srcDir24L2: BpfMap;
  dstDir24L2: BpfMap;
  ifslots: BpfMap;
  ruleStats: BpfMap;
  /** Policy rules' hits by rule slot (src/policy/slots.ts). */
  slotHits: BpfMap;
  stats: BpfMap;
  flows: BpfMap;
  config: BpfMap;
  /** The flat IPv6 prefix tables (v6-lengths.ts). */
  v6: V6Maps;
  /** The rule tables of the policy stage (src/policy/tables.ts). */
  policy: PolicyMaps;
  /** Rate limits' parameters, buckets and counters (src/ratelimit/tables.ts). */
  rateLimits: RateLimitMaps;
  /** Sampled packet events (src/events/hub.ts); config is xw_config again, for the gate. */
  events: EventMaps;
}

export interface AttachedInterface {
  /** As configured: "IFNAME" or "NETNS/IFNAME". */
  iface: string;
  ifindex: number;
  /** The XDP mode in effect (auto resolves to one of these). */
  xdpMode: XdpMode;
  requestedMode: AttachMode;
  /** TC egress accounting attached. */
  egress: boolean;
  /** 'degraded': our programs are not on the interface now (see reason); the daemon keeps trying. */
  state: 'attached' | 'degraded';
  reason?: string;
}

export interface DatapathOptions {
  objectPath: string;
  /** Where to pin this instance's maps and links (mounting bpffs if needed); null keeps them unpinned. */
  pin: { bpffsRoot: string; dir: string } | null;
  capacity: Config['capacity'];
}

export type { Logger } from '../logger.js';

export interface AttachOptions {
  /** Replace an XDP program this instance does not own. */
  force?: boolean;
}

/** What one interface has of ours: the config, the last attach, and the open link fds. */
interface Hooked {
  config: InterfaceConfig;
  force: boolean;
  state: AttachedInterface;
  links: OwnedLink[];
}

/** The map directory this object (as configured) pins into: parsed from the ELF, nothing loaded. */
function mapsDirFor(objectPath: string, capacity: Config['capacity'], pinDir: string): string {
  const probe = BpfObject.open(objectPath);
  try {
    applyCapacity(probe, capacity);
    return join(pinDir, mapsDirName(probe));
  } finally {
    probe.close();
  }
}

export class Datapath {
  readonly cpus = numPossibleCpus();
  private readonly hooked = new Map<string, Hooked>();
  private lock: DirLock | undefined;

  private constructor(
    private readonly object: BpfObject,
    readonly maps: DatapathMaps,
    readonly ingress: BpfProgram,
    readonly egress: BpfProgram,
    private readonly log: Logger,
    /** The instance's pin directory and the map directory in use; undefined when unpinned. */
    readonly pins: { dir: string; maps: string } | undefined,
    lock: DirLock | undefined,
    /** Interface slots of the counter array, as xw_ifslots holds them. */
    readonly ifslots: IfslotTable,
  ) {
    this.lock = lock;
  }

  /**
   * Locks the pin directory (one daemon per instance), then loads the
   * programs, reusing the maps pinned for exactly this ABI version and
   * layout. Nothing is attached or detached here: what a previous run left
   * on the interfaces keeps enforcing until attach() swaps.
   */
  static async load(options: DatapathOptions, log: Logger): Promise<Datapath> {
    const { pin } = options;
    let lock: DirLock | undefined;
    let mapsDir: string | undefined;
    let adopted = false;
    if (pin) {
      if (ensureBpffs(pin.bpffsRoot)) log.info({ path: pin.bpffsRoot }, 'mounted bpffs');
      mkdirSync(pin.dir, { recursive: true, mode: 0o700 });
      lock = lockDirectory(pin.dir, 'pin directory');
    }
    let object: BpfObject | undefined;
    try {
      if (pin) {
        mapsDir = mapsDirFor(options.objectPath, options.capacity, pin.dir);
        adopted = existsSync(mapsDir);
        mkdirSync(mapsDir, { recursive: true, mode: 0o700 });
        log.info({ mapsDir, adopted }, adopted ? 'adopting pinned maps' : 'no maps pinned for this ABI version and layout: new maps, filled from the store');
      }
      object = BpfObject.open(options.objectPath, mapsDir ? { pinRoot: mapsDir } : {});
      applyCapacity(object, options.capacity);
      await object.load();
    } catch (error) {
      const explained = object && explainLoadFailure(error, object, numPossibleCpus());
      object?.close();
      lock?.release();
      if (error instanceof XdpwallError) throw error;
      if (explained) {
        log.warn({ err: error }, 'loading the BPF object failed');
        throw new DatapathError(`cannot load ${options.objectPath}: ${(error as BpfError).code}: ${explained}`, { cause: error });
      }
      throw new DatapathError(`cannot load ${options.objectPath}: ${describe(error)}${pinHint(error, mapsDir)}`, { cause: error });
    }
    const maps: DatapathMaps = {
      srcV4: object.map(MAPS.srcV4),
      dstV4: object.map(MAPS.dstV4),
      srcV6: object.map(MAPS.srcV6),
      dstV6: object.map(MAPS.dstV6),
      srcHostV4: object.map(MAPS.srcHostV4),
      dstHostV4: object.map(MAPS.dstHostV4),
      srcHostV6: object.map(MAPS.srcHostV6),
      dstHostV6: object.map(MAPS.dstHostV6),
      srcDir24: object.map(MAPS.srcDir24),
      dstDir24: object.map(MAPS.dstDir24),
      srcDir24L2: object.map(MAPS.srcDir24L2),
      dstDir24L2: object.map(MAPS.dstDir24L2),
      ifslots: object.map(MAPS.ifslots),
      ruleStats: object.map(MAPS.ruleStats),
      slotHits: object.map(MAPS.slotHits),
      stats: object.map(MAPS.stats),
      flows: object.map(MAPS.flows),
      config: object.map(MAPS.config),
      v6: v6MapsOf(object),
      policy: policyMapsOf(object),
      rateLimits: rateLimitMapsOf(object),
      events: { ring: object.map(EVENT_MAPS.ring), cfg: object.map(EVENT_MAPS.cfg), stats: object.map(EVENT_MAPS.stats), config: object.map(MAPS.config) },
    };
    const pins = pin && mapsDir ? { dir: pin.dir, maps: mapsDir } : undefined;
    const ifslots = await IfslotTable.read(maps.ifslots);
    return new Datapath(object, maps, object.program(PROGRAMS.ingress), object.program(PROGRAMS.egress), log, pins, lock, ifslots);
  }

  private get linksDir(): string | undefined {
    return this.pins && linksDir(this.pins.dir);
  }

  /**
   * Puts our programs on the interface: swaps them into our pinned links
   * when those are still attached (a restart or an upgrade: no moment
   * without a program), or creates and pins new links on a free hook. An
   * XDP program we do not own is refused unless `force`.
   */
  attach(config: InterfaceConfig, options: AttachOptions = {}): AttachedInterface {
    const { name, mode } = config;
    const force = options.force ?? false;
    const dir = this.linksDir;
    if (dir) mkdirSync(dir, { recursive: true, mode: 0o700 });
    const ingress: Program = { fd: this.ingress.fd, id: this.ingress.id };
    const egress: Program = { fd: this.egress.fd, id: this.egress.id };
    const links: OwnedLink[] = [];
    try {
      links.push(putOnHook({
        iface: name, hook: 'xdp', program: ingress, linksDir: dir, log: this.log,
        create: () => {
          claimXdpHook(name, force, this.log);
          return createXdpLink(name, ingress, mode, this.log);
        },
      }));
      links.push(putOnHook({
        iface: name, hook: 'tcx_egress', program: egress, linksDir: dir, log: this.log,
        create: () => linkCreate(name, egress.fd, 'tcx_egress'),
      }));
    } catch (error) {
      // Links we made stay pinned (they run our current programs); only the fds close.
      for (const link of links) closeSync(link.fd);
      if (error instanceof XdpwallError) throw error;
      throw new DatapathError(`cannot attach to ${name}: ${describe(error)}`, { cause: error });
    }
    const ifindex = links[0]!.ifindex;
    assignIfslot(this.maps, this.ifslots, ifindex, this.log);
    const xdpMode = currentXdpMode(name);
    if (mode !== 'auto' && mode !== xdpMode) {
      this.log.warn({ iface: name, requested: mode, inEffect: xdpMode }, 'the pinned link keeps its XDP mode: run `xdpwall detach` and restart to change it');
    }
    const state: AttachedInterface = { iface: name, ifindex, xdpMode, requestedMode: mode, egress: true, state: 'attached' };
    for (const other of this.hooked.values()) {
      if (other.config.name !== name && other.state.ifindex === ifindex) {
        this.log.warn({ iface: name, other: other.config.name, ifindex }, 'two interfaces share an ifindex (different namespaces): their counters are merged');
      }
    }
    this.forget(name);
    this.hooked.set(name, { config, force, state, links });
    this.log.info({ iface: name, ifindex, xdpMode, swapped: links.every((l) => l.swapped) }, links.every((l) => l.swapped) ? 'programs swapped into the pinned links' : 'attached');
    return state;
  }

  /**
   * Checks that every attached interface still runs our programs (the
   * interface or its namespace may have been deleted and recreated) and
   * re-attaches where it does not. What cannot be re-attached is reported
   * degraded, with the reason, until it can.
   */
  verify(): AttachedInterface[] {
    for (const [name, hooked] of [...this.hooked]) {
      const problem = this.problem(hooked);
      if (problem === undefined) {
        if (hooked.state.state === 'degraded') this.markAttached(hooked);
        continue;
      }
      try {
        this.attach(hooked.config, { force: hooked.force });
        this.log.info({ iface: name, was: problem }, 're-attached');
      } catch (error) {
        const reason = `${problem}; re-attach failed: ${describe(error)}`;
        if (hooked.state.reason !== reason) this.log.warn({ iface: name, reason }, 'interface degraded: not filtering');
        hooked.state = { ...hooked.state, state: 'degraded', reason };
      }
    }
    return this.interfaces();
  }

  private problem({ config, links }: Hooked): string | undefined {
    let ifindexNow: number;
    try {
      ifindexNow = resolveIfindex(config.name);
    } catch (error) {
      return `${config.name} is gone (${describe(error)})`;
    }
    for (const link of links) {
      const info = linkInfo(link.fd);
      if (!linkIsLive(info, ifindexNow)) return `${link.hook} link ${info.id} is no longer attached to ${config.name}`;
    }
    return undefined;
  }

  private markAttached(hooked: Hooked): void {
    const { reason: _, ...attached } = hooked.state;
    hooked.state = { ...attached, state: 'attached' };
    this.log.info({ iface: hooked.config.name }, 'interface healthy again');
  }

  private forget(name: string): void {
    for (const link of this.hooked.get(name)?.links ?? []) closeSync(link.fd);
    this.hooked.delete(name);
  }

  /**
   * After a successful start: drops map pins of other versions and layouts
   * (the old programs hold their maps until the swaps release them) and
   * detaches our links from interfaces no longer configured.
   */
  retire(): void {
    if (!this.pins) return;
    const retired = retiredPins(this.pins.dir, basename(this.pins.maps));
    if (retired.length > 0) {
      removePins(retired);
      this.log.info({ removed: retired }, 'removed pins of an earlier ABI version or map layout');
    }
    for (const entry of pinnedLinks(this.pins.dir)) {
      if (this.hooked.has(entry.iface)) continue;
      this.log.warn(detachPinnedLink(entry), 'detached a link of an interface no longer configured');
    }
  }

  /** Takes our programs off one interface now: its links detached and unpinned. */
  detach(iface: string): void {
    const hooked = this.hooked.get(iface);
    if (!hooked) return;
    const dir = this.linksDir;
    for (const link of hooked.links) {
      if (linkInfo(link.fd).ifindex !== 0) linkDetach(link.fd);
      if (dir) rmSync(join(dir, linkPinName(link.hook, iface)), { force: true });
    }
    this.forget(iface);
    this.log.info({ iface }, 'detached');
  }

  /** The configured interfaces, attached or degraded, with the XDP mode the kernel reports. */
  interfaces(): AttachedInterface[] {
    return [...this.hooked.values()].map(({ state }) => state);
  }

  ifaceName(ifindex: number): string | undefined {
    for (const { state } of this.hooked.values()) if (state.ifindex === ifindex) return state.iface;
    return undefined;
  }

  /**
   * Frees our handles and the pin directory lock. The pinned links stay:
   * the kernel keeps enforcing until the next start swaps or `xdpwall
   * detach` removes them. (Unpinned links, in tests, go with their fds.)
   */
  close(): void {
    for (const name of [...this.hooked.keys()]) this.forget(name);
    this.object.close();
    this.lock?.release();
    this.lock = undefined;
  }
}

/**
 * Gives the interface a slot of the counter array (xw_ifslots[ifindex]),
 * keeping the one it has (a restart adopts the pinned map and its
 * counters). A new slot's counters are zeroed first: they may hold an
 * interface's that went away. Without a free slot the interface counts in
 * slot 0, shared by all such interfaces (reported as ifindex 0).
 */
export function assignIfslot(maps: Pick<DatapathMaps, 'ifslots' | 'stats'>, slots: IfslotTable, ifindex: number, log: Logger): number {
  if (ifindex >= IFSLOT_IFINDEX_MAX) {
    log.warn({ ifindex }, `ifindex above ${IFSLOT_IFINDEX_MAX - 1}: its packets are counted under interface 0`);
    return 0;
  }
  const current = slots.slotOf(ifindex);
  if (current > 0) return current;
  let slot = 1;
  while (slots.ifindexOf(slot) !== undefined && slot < STATS_IFSLOTS) slot++;
  if (slot >= STATS_IFSLOTS) {
    log.warn({ ifindex }, `all ${STATS_IFSLOTS - 1} interface counter slots are taken: counted under interface 0`);
    return 0;
  }
  const zero = Buffer.alloc(maps.stats.valueStride);
  for (let direction = 0; direction < 2; direction++) {
    for (let verdict = 0; verdict < 2; verdict++) {
      for (let reason = 0; reason < STATS_REASONS; reason++) maps.stats.update(encodeU32(statsIndex(slot, direction, verdict, reason)), zero);
    }
  }
  maps.ifslots.update(encodeU32(ifindex), encodeU32(slot));
  slots.set(ifindex, slot);
  return slot;
}

/** The control plane's copy of xw_ifslots, both ways (read from the map once at load). */
export class IfslotTable {
  private readonly bySlot = new Map<number, number>();
  private readonly byIfindex = new Map<number, number>();

  static async read(map: BpfMap): Promise<IfslotTable> {
    const table = new IfslotTable();
    const { keys, values, count } = await map.lookupAll();
    for (let i = 0; i < count; i++) {
      const slot = values.readUInt32LE(i * map.valueStride);
      if (slot > 0) table.set(keys.readUInt32LE(i * 4), slot);
    }
    return table;
  }

  set(ifindex: number, slot: number): void {
    this.bySlot.set(slot, ifindex);
    this.byIfindex.set(ifindex, slot);
  }

  slotOf(ifindex: number): number {
    return this.byIfindex.get(ifindex) ?? 0;
  }

  /** The ifindex counted in a slot; 0 for slot 0 (interfaces without a slot). */
  ifindexOf(slot: number): number | undefined {
    return slot === 0 ? 0 : this.bySlot.get(slot);
  }
}

const encodeU32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
};

/** The XDP mode the kernel reports for the interface ('native' when it cannot tell). */
function currentXdpMode(iface: string): XdpMode {
  const { mode } = xdpQuery(iface);
  return mode === 'generic' ? 'generic' : 'native';
}

/** Sizes the maps from the configuration; before load(). */
export function applyCapacity(object: BpfObject, { cidrV4, cidrV6, flows, rateBuckets, rateBucketsV6, timedBlocks }: Config['capacity']): void {
  object.setMapMaxEntries(MAPS.srcV4, cidrV4);
  object.setMapMaxEntries(MAPS.dstV4, cidrV4);
  object.setMapMaxEntries(MAPS.srcV6, cidrV6);
  object.setMapMaxEntries(MAPS.dstV6, cidrV6);
  object.setMapMaxEntries(MAPS.srcHostV4, cidrV4);
  object.setMapMaxEntries(MAPS.dstHostV4, cidrV4);
  object.setMapMaxEntries(MAPS.srcHostV6, cidrV6);
  object.setMapMaxEntries(MAPS.dstHostV6, cidrV6);
  applyV6Capacity(object, cidrV6);
  // Counters exist only for rules that dropped something (created on first hit).
  object.setMapMaxEntries(MAPS.ruleStats, cidrV4 + cidrV6);
  object.setMapMaxEntries(MAPS.flows, flows);
  if (rateBuckets !== undefined) object.setMapMaxEntries(RATELIMIT_MAPS.bucketsV4, rateBuckets);
  if (rateBucketsV6 !== undefined) object.setMapMaxEntries(RATELIMIT_MAPS.buckets, rateBucketsV6);
  if (timedBlocks !== undefined) object.setMapMaxEntries(POLICY_MAPS.blockMeta, timedBlocks);
}

/** Per-map kernel memory of the data plane at a capacity, from the object's map definitions (nothing is loaded). */
export function plannedMapMemory(objectPath: string, capacity: Config['capacity'], cpus: number): MapMemory[] {
  const object = BpfObject.open(objectPath);
  try {
    applyCapacity(object, capacity);
    return mapMemory(object.mapNames().map((name) => object.map(name)), cpus);
  } finally {
    object.close();
  }
}

export function describe(error: unknown): string {
  if (error instanceof BpfError) return `${error.op}: ${error.code} (${error.message})`;
  return error instanceof Error ? error.message : String(error);
}

function pinHint(error: unknown, mapsDir: string | undefined): string {
  if (!mapsDir || !(error instanceof BpfError) || error.code !== 'EINVAL') return '';
  return `; a map pinned in ${mapsDir} does not match the object although its ABI version and layout digest do: it is not reused; remove that directory to recreate the maps (rules are restored from the store)`;
}
