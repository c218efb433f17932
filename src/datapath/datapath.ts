// Loads the data plane, pins its maps for the next start to adopt, and
// attaches it to interfaces: XDP on ingress, TC (clsact) on egress.
import { mkdirSync } from 'node:fs';
import {
  BpfError,
  BpfObject,
  ensureBpffs,
  numPossibleCpus,
  tcAttach,
  tcDetach,
  xdpAttach,
  xdpDetach,
  xdpQuery,
  type BpfMap,
  type BpfProgram,
  type XdpMode,
} from '@xdpwall/addon';
import { MAPS, PROGRAMS } from './abi.js';
import type { AttachMode, Config, InterfaceConfig } from '../config.js';
import { DatapathError } from '../errors.js';

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
  ruleStats: BpfMap;
  stats: BpfMap;
  flows: BpfMap;
  config: BpfMap;
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
}

export interface DatapathOptions {
  objectPath: string;
  /** Where to pin this instance's maps (mounting bpffs if needed); null keeps them unpinned. */
  pin: { bpffsRoot: string; dir: string } | null;
  capacity: Config['capacity'];
}

export interface Logger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  /** Failures that need an operator (pino has it; warn stands in where absent). */
  error?(obj: object, msg: string): void;
}

export class Datapath {
  readonly cpus = numPossibleCpus();
  private readonly attached = new Map<string, AttachedInterface>();

  private constructor(
    private readonly object: BpfObject,
    readonly maps: DatapathMaps,
    readonly ingress: BpfProgram,
    readonly egress: BpfProgram,
    private readonly log: Logger,
  ) {}

  static async load(options: DatapathOptions, log: Logger): Promise<Datapath> {
    const { pin } = options;
    if (pin) {
      if (ensureBpffs(pin.bpffsRoot)) log.info({ path: pin.bpffsRoot }, 'mounted bpffs');
      mkdirSync(pin.dir, { recursive: true, mode: 0o700 });
    }
    const object = BpfObject.open(options.objectPath, pin ? { pinRoot: pin.dir } : {});
    try {
      const { cidrV4, cidrV6, flows } = options.capacity;
      object.setMapMaxEntries(MAPS.srcV4, cidrV4);
      object.setMapMaxEntries(MAPS.dstV4, cidrV4);
      object.setMapMaxEntries(MAPS.srcV6, cidrV6);
      object.setMapMaxEntries(MAPS.dstV6, cidrV6);
      object.setMapMaxEntries(MAPS.srcHostV4, cidrV4);
      object.setMapMaxEntries(MAPS.dstHostV4, cidrV4);
      object.setMapMaxEntries(MAPS.srcHostV6, cidrV6);
      object.setMapMaxEntries(MAPS.dstHostV6, cidrV6);
      // Counters exist only for rules that dropped something (created on first hit).
      object.setMapMaxEntries(MAPS.ruleStats, cidrV4 + cidrV6);
      object.setMapMaxEntries(MAPS.flows, flows);
      await object.load();
    } catch (error) {
      object.close();
      throw new DatapathError(`cannot load ${options.objectPath}: ${describe(error)}${pinHint(error, pin?.dir)}`, {
        cause: error,
      });
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
      ruleStats: object.map(MAPS.ruleStats),
      stats: object.map(MAPS.stats),
      flows: object.map(MAPS.flows),
      config: object.map(MAPS.config),
    };
    return new Datapath(object, maps, object.program(PROGRAMS.ingress), object.program(PROGRAMS.egress), log);
  }

  /** Attaches XDP (in the configured mode) and TC egress; replaces earlier programs there. */
  attach({ name, mode }: InterfaceConfig): AttachedInterface {
    const xdpMode = this.attachXdp(name, mode);
    let state: AttachedInterface;
    try {
      const { ifindex } = tcAttach(name, this.egress.fd, 'egress');
      state = { iface: name, ifindex, xdpMode, requestedMode: mode, egress: true };
    } catch (error) {
      xdpDetach(name, xdpMode);
      throw new DatapathError(`cannot attach TC egress to ${name}: ${describe(error)}`, { cause: error });
    }
    for (const other of this.attached.values()) {
      if (other.ifindex === state.ifindex) {
        this.log.warn({ iface: name, other: other.iface, ifindex: state.ifindex }, 'two interfaces share an ifindex (different namespaces): their counters are merged');
      }
    }
    this.attached.set(name, state);
    this.log.info({ iface: name, ifindex: state.ifindex, xdpMode }, 'attached');
    return state;
  }

  private attachXdp(name: string, mode: AttachMode): XdpMode {
    if (mode !== 'auto') {
      try {
        return xdpAttach(name, this.ingress.fd, mode).mode;
      } catch (error) {
        throw new DatapathError(`cannot attach XDP (${mode}) to ${name}: ${describe(error)}`, { cause: error });
      }
    }
    try {
      return xdpAttach(name, this.ingress.fd, 'native').mode;
    } catch (nativeError) {
      this.log.warn({ iface: name, error: describe(nativeError) }, 'native XDP failed, falling back to generic mode');
      try {
        return xdpAttach(name, this.ingress.fd, 'generic').mode;
      } catch (error) {
        throw new DatapathError(`cannot attach XDP to ${name} (native: ${describe(nativeError)}; generic: ${describe(error)})`, {
          cause: error,
        });
      }
    }
  }

  /** Removes our programs from one interface; tolerates an interface that is gone. */
  detach(iface: string): void {
    const state = this.attached.get(iface);
    if (!state) return;
    this.attached.delete(iface);
    for (const undo of [() => xdpDetach(iface, state.xdpMode), () => tcDetach(iface, 'egress')]) {
      try {
        undo();
      } catch (error) {
        this.log.warn({ iface, error: describe(error) }, 'detach failed');
      }
    }
    this.log.info({ iface }, 'detached');
  }

  detachAll(): void {
    for (const iface of [...this.attached.keys()]) this.detach(iface);
  }

  /** The attached interfaces, with the XDP mode the kernel reports now. */
  interfaces(): AttachedInterface[] {
    return [...this.attached.values()].map((state) => {
      try {
        const { mode } = xdpQuery(state.iface);
        return mode === 'native' || mode === 'generic' ? { ...state, xdpMode: mode } : state;
      } catch {
        return state; // interface gone or namespace removed: report what we attached
      }
    });
  }

  ifaceName(ifindex: number): string | undefined {
    for (const state of this.attached.values()) if (state.ifindex === ifindex) return state.iface;
    return undefined;
  }

  close(): void {
    this.detachAll();
    this.object.close();
  }
}

export function describe(error: unknown): string {
  if (error instanceof BpfError) return `${error.op}: ${error.code} (${error.message})`;
  return error instanceof Error ? error.message : String(error);
}

function pinHint(error: unknown, pinDir: string | undefined): string {
  if (!pinDir || !(error instanceof BpfError) || error.code !== 'EINVAL') return '';
  return `; if the capacity changed since the maps in ${pinDir} were pinned, remove that directory to recreate them (flow counters are lost, rules are restored from the store)`;
}
