// Whether the pinned maps a start adopts were filled from the store by an
// earlier start: then they enforce the stored rules (or, after a crash in
// the middle of a change, the rules just before or after it) and a restart
// may serve while it reconciles them. A file in the state directory names
// the map directory and the kernel id of its xw_config map: ids are never
// reused while the system runs, so maps created since (after `xdpwall
// detach`, a reboot, or an upgrade that changed the layout) do not match,
// and neither do maps whose first filling never finished (the file is
// written after it).
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { Datapath } from './datapath.js';

export const RESTORE_MARKER = 'kernel-restored.json';

interface Marker {
  mapsDir: string;
  configMapId: number;
}

function markerOf(datapath: Datapath): Marker | undefined {
  const { pins } = datapath;
  const id = datapath.maps.config.id;
  return pins && id > 0 ? { mapsDir: basename(pins.maps), configMapId: id } : undefined;
}

/** True when `file` names a map directory present in `pinDir`: restoredBefore will likely say yes once the maps are loaded. */
export function markedMapsExist(file: string, pinDir: string): boolean {
  try {
    const { mapsDir } = JSON.parse(readFileSync(file, 'utf8')) as Partial<Marker>;
    return typeof mapsDir === 'string' && /^[A-Za-z0-9_-]+$/.test(mapsDir) && existsSync(join(pinDir, mapsDir));
  } catch {
    return false;
  }
}

/** True when `file` says these very maps were filled from the store before. */
export function restoredBefore(file: string, datapath: Datapath): boolean {
  const current = markerOf(datapath);
  if (!current) return false;
  try {
    const stored = JSON.parse(readFileSync(file, 'utf8')) as Partial<Marker>;
    return stored.mapsDir === current.mapsDir && stored.configMapId === current.configMapId;
  } catch {
    return false; // absent or unreadable: restore before serving
  }
}

/** Records that the maps now hold the stored rules (written whole, then renamed into place). */
export function markRestored(file: string, datapath: Datapath): void {
  const current = markerOf(datapath);
  if (!current) return;
  const temporary = `${file}.tmp`;
  try {
    writeFileSync(temporary, JSON.stringify(current), { mode: 0o600 });
    renameSync(temporary, file);
  } catch (error) {
    rmSync(temporary, { force: true });
    throw error;
  }
}
