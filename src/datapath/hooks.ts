// Our programs on interfaces' hooks through pinned bpf_links, and only where
// this instance owns the hook. A link pinned in the instance's links/
// directory is ours; anything else on the XDP hook (another tool's program,
// another instance's link) is refused unless forced, and then removed by
// name (its program id), never blindly.
import { closeSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import {
  BpfError, linkCreate, linkDetach, linkFdById, linkInfo, linkList, linkUpdate, objGet, objPin, progInfo, xdpDetach, xdpQuery,
  ifindex as resolveIfindex,
  type LinkHook,
  type LinkInfo,
  type XdpMode,
} from '@xdpwall/addon';
import { HookBusyError } from '../errors.js';
import { linkPinName, linksDir, parseLinkPinName } from './pins.js';
import type { Logger } from '../logger.js';

export interface Program {
  fd: number;
  id: number;
}

/** An open link of ours: `fd` stays open while the daemon runs, for cheap health checks. */
export interface OwnedLink {
  hook: LinkHook;
  fd: number;
  ifindex: number;
  /** True if an existing link got the new program (bpf_link_update), false if the link is new. */
  swapped: boolean;
}

function isErrno(error: unknown, code: string): boolean {
  return error instanceof BpfError && error.code === code;
}

/** The pinned link's fd, or undefined when nothing is pinned there. */
export function openPinnedLink(pin: string): number | undefined {
  try {
    return objGet(pin);
  } catch (error) {
    if (isErrno(error, 'ENOENT')) return undefined;
    throw error;
  }
}

/** The program as a message names it: "xdp program 'xw_ingress' (id 42)". */
export function describeProgram(id: number): string {
  try {
    const { name, type } = progInfo(id);
    return `${type} program '${name}' (id ${id})`;
  } catch {
    return `program id ${id}`;
  }
}

/** True while the link is attached to the interface that now has this name. */
export function linkIsLive(info: LinkInfo, ifindexNow: number): boolean {
  return info.ifindex !== 0 && info.ifindex === ifindexNow;
}

export interface PutOptions {
  iface: string;
  hook: LinkHook;
  program: Program;
  /** The links/ directory of the instance; undefined keeps the link unpinned (alive while its fd is open). */
  linksDir: string | undefined;
  /** Creates a new link when there is none to update. */
  create: () => { fd: number; ifindex: number };
  log: Logger;
}

/**
 * Puts the program on the hook. Our pinned link, still attached to this
 * interface, gets the program swapped in: packets see the old program or the
 * new one, never none. A defunct link (its interface was deleted, perhaps
 * recreated) is dropped and a new link made and pinned.
 */
export function putOnHook({ iface, hook, program, linksDir: dir, create, log }: PutOptions): OwnedLink {
  const pin = dir === undefined ? undefined : join(dir, linkPinName(hook, iface));
  const pinned = pin === undefined ? undefined : openPinnedLink(pin);
  if (pinned !== undefined) {
    let keep = false;
    try {
      const info = linkInfo(pinned);
      const ifindexNow = resolveIfindex(iface);
      if (linkIsLive(info, ifindexNow)) {
        if (info.progId !== program.id) linkUpdate(pinned, program.fd, { expectedProgId: info.progId });
        keep = true;
        return { hook, fd: pinned, ifindex: ifindexNow, swapped: true };
      }
      log.warn({ iface, hook, link: info.id }, 'pinned link is defunct (the interface was deleted): replacing it');
      if (info.ifindex !== 0) linkDetach(pinned); // attached to an older interface of that name
      rmSync(pin!, { force: true });
    } finally {
      if (!keep) closeSync(pinned);
    }
  }
  const link = create();
  try {
    if (pin !== undefined) objPin(link.fd, pin);
  } catch (error) {
    closeSync(link.fd); // the only reference: closing it detaches
    throw error;
  }
  return { hook, fd: link.fd, ifindex: link.ifindex, swapped: false };
}

/**
 * Makes sure the XDP hook is free before we create a link there. A program
 * we do not own is refused, naming it, unless `force`: then it is removed by
 * its id (its link detached, or a netlink attachment detached only if it is
 * still that program).
 */
export function claimXdpHook(iface: string, force: boolean, log: Logger): void {
  const { progId, ifindex } = xdpQuery(iface);
  if (progId === 0) return;
  const link = linkList().find((l) => l.type === 'xdp' && l.progId === progId && l.ifindex === ifindex);
  const holder = `${describeProgram(progId)}${link ? ` through link ${link.id}` : ''}`;
  if (!force) {
    throw new HookBusyError(
      `${iface} already runs ${holder}, which this instance does not own (another tool, or another xdpwall instance); refusing to replace it (serve --force takes the hook)`,
    );
  }
  log.warn({ iface, holder }, 'removing a program this instance does not own (--force)');
  if (link) {
    const fd = linkFdById(link.id);
    try {
      linkDetach(fd);
    } finally {
      closeSync(fd);
    }
  } else {
    xdpDetach(iface, undefined, { expectedProgId: progId });
  }
}

/** Creates an XDP link in the mode, 'auto' trying native first. */
export function createXdpLink(iface: string, program: Program, mode: XdpMode | 'auto', log: Logger): { fd: number; ifindex: number } {
  if (mode !== 'auto') return linkCreate(iface, program.fd, 'xdp', { xdpMode: mode });
  try {
    return linkCreate(iface, program.fd, 'xdp', { xdpMode: 'native' });
  } catch (nativeError) {
    log.warn({ iface, error: (nativeError as Error).message }, 'native XDP failed, falling back to generic mode');
    return linkCreate(iface, program.fd, 'xdp', { xdpMode: 'generic' });
  }
}

export interface PinnedLinkEntry {
  hook: LinkHook;
  iface: string;
  pin: string;
}

/** The links pinned in the instance's links/ directory. */
export function pinnedLinks(pinDir: string): PinnedLinkEntry[] {
  let names: string[];
  try {
    names = readdirSync(linksDir(pinDir));
  } catch {
    return [];
  }
  return names.flatMap((name) => {
    const parsed = parseLinkPinName(name);
    return parsed ? [{ ...parsed, pin: join(linksDir(pinDir), name) }] : [];
  });
}

export interface DetachedLink {
  hook: LinkHook;
  iface: string;
  link: number;
  program: string;
}

/** Detaches and unpins one of our links: the hook stops running our program. */
export function detachPinnedLink({ hook, iface, pin }: PinnedLinkEntry): DetachedLink {
  const fd = openPinnedLink(pin);
  if (fd === undefined) return { hook, iface, link: 0, program: 'nothing (no pin)' };
  try {
    const info = linkInfo(fd);
    if (info.ifindex !== 0) linkDetach(fd);
    rmSync(pin, { force: true });
    return { hook, iface, link: info.id, program: describeProgram(info.progId) };
  } finally {
    closeSync(fd);
  }
}
