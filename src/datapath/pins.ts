// The instance's bpffs directory:
//   <pinDir>/maps-v<ABI>-<layout>/<map>   maps of one ABI version and layout
//   <pinDir>/links/<hook>_<iface>          the bpf_links that attach the programs
// Maps are reused only from the directory whose name matches the object
// about to be loaded: its ABI version (xw_abi.version in .rodata) and a
// digest of every map's type, key and value size, capacity and flags. Any
// difference (an upgrade, a capacity change) gets a fresh directory that the
// start-up reconcile fills from the rule store; a pin of another layout is
// never reused silently. Links outlive the daemon: they keep the programs,
// and with them the maps, in the kernel between two runs.
import { createHash } from 'node:crypto';
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { BpfObject, LinkHook } from '@xdpwall/addon';

/** The object's `xw_abi.version`: the first u32 of the xw_abi constant. */
export function objectAbiVersion(object: BpfObject): number {
  return object.variable('xw_abi').readUInt32LE(0);
}

/** Names the map directory for this object as configured (capacities set). */
export function mapsDirName(object: BpfObject): string {
  const layout = object
    .mapNames()
    .filter((name) => !name.includes('.')) // .rodata, .bss: private, never pinned
    .sort()
    .map((name) => {
      const m = object.map(name);
      return `${name}:${m.type}:${m.keySize}:${m.valueSize}:${m.maxEntries}:${m.mapFlags}`;
    })
    .join('\n');
  const digest = createHash('sha256').update(layout).digest('hex').slice(0, 12);
  return `maps-v${objectAbiVersion(object)}-${digest}`;
}

const MAPS_DIR = /^maps-v\d+-[0-9a-f]{12}$/;

/** Map directories of other versions or layouts, and map pins of the pre-link layout (pinDir/xw_*). */
export function retiredPins(pinDir: string, current: string): string[] {
  return readdirSync(pinDir)
    .filter((name) => (MAPS_DIR.test(name) && name !== current) || name.startsWith('xw_'))
    .map((name) => join(pinDir, name));
}

export function removePins(paths: readonly string[]): void {
  for (const path of paths) rmSync(path, { recursive: true, force: true });
}

export const linksDir = (pinDir: string): string => join(pinDir, 'links');

/**
 * bpffs refuses names with '.', and "NETNS/IFNAME" has a '/': everything but
 * letters, digits, '_' and '-' is written as %XX.
 */
export function linkPinName(hook: LinkHook, iface: string): string {
  const encoded = [...Buffer.from(iface, 'utf8')]
    .map((byte) => {
      const c = String.fromCharCode(byte);
      return /[A-Za-z0-9_-]/.test(c) ? c : `%${byte.toString(16).padStart(2, '0')}`;
    })
    .join('');
  return `${hook}_${encoded}`;
}

/** The inverse of linkPinName; undefined for names it did not make. */
export function parseLinkPinName(name: string): { hook: LinkHook; iface: string } | undefined {
  const match = /^(xdp|tcx_ingress|tcx_egress)_(.+)$/.exec(name);
  if (!match) return undefined;
  try {
    return { hook: match[1] as LinkHook, iface: decodeURIComponent(match[2]!) };
  } catch {
    return undefined;
  }
}
