// Self lock-out: refuse a block that would drop the requesting client's own
// packets to the API, unless the request says "force": true. An operator who
// blocks their own /24 from a remote shell otherwise gets a 201 and can then
// never reach the API again (rules are restored on restart).
//
// Ingress filtering sees the client's packets with src = the client's address
// and dst = the address it connected to, so a src block covering the former,
// or a dst block covering the latter, cuts the connection. Loopback clients
// are never filtered (XDP sits on the configured interfaces, not lo).
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { fromMappedV6, parseCidr, parseIp, type IpAddress } from '../rules/cidr.js';
import { prefixesContaining } from '../rules/blocks.js';
import type { BlockDirection } from '../rules/model.js';
import { XdpwallError } from '../errors.js';

export class SelfLockoutError extends XdpwallError {
  override readonly name = 'SelfLockoutError';
  constructor(message: string) {
    super('SELF_LOCKOUT', message);
  }
}

/** The two ends of the client's connection to the API, as the socket reports them. */
export interface ApiPeer {
  remote?: string;
  local?: string;
}

export interface BlockIntent {
  cidr: string;
  direction?: BlockDirection;
  force?: boolean;
}

function address(text: string | undefined): IpAddress | undefined {
  if (!text) return undefined;
  try {
    const ip = parseIp(text);
    return ip.family === 6 ? fromMappedV6(ip.bytes) : ip; // "::ffff:198.18.0.1" on a dual-stack socket
  } catch {
    return undefined;
  }
}

const isLoopback = (ip: IpAddress): boolean =>
  ip.family === 4 ? ip.bytes[0] === 127 : ip.bytes.every((byte, i) => byte === (i === 15 ? 1 : 0));

/** Bulk checks yield this often, so a million items do not stall the event loop. */
const ITEMS_PER_SLICE = 8192;

export class SelfLockoutGuard {
  /** Canonical prefixes that contain the client's address (src) and the API's address (dst). */
  private readonly covering: Record<BlockDirection, ReadonlySet<string>>;
  private readonly peer: { remote: string; local: string };

  constructor(peer: ApiPeer) {
    const remote = address(peer.remote);
    const local = address(peer.local);
    const exposed = remote !== undefined && !isLoopback(remote);
    this.peer = { remote: remote?.text ?? '?', local: local?.text ?? '?' };
    this.covering = {
      src: new Set(exposed ? prefixesContaining(remote.text) : []),
      dst: new Set(exposed && local ? prefixesContaining(local.text) : []),
    };
  }

  /** True when no block could cut this client off (a loopback or unix-socket client). */
  get idle(): boolean {
    return this.covering.src.size === 0 && this.covering.dst.size === 0;
  }

  /** Throws SelfLockoutError if the block would cut this client off. Invalid CIDRs are left to the rule model. */
  check(block: BlockIntent, forceAll = false, label = ''): void {
    if (this.idle || block.force === true || forceAll) return;
    const direction = block.direction ?? 'src';
    let canonical: string;
    try {
      canonical = parseCidr(block.cidr).text;
    } catch {
      return;
    }
    if (!this.covering[direction].has(canonical)) return;
    const whose = direction === 'src' ? `packets from your address ${this.peer.remote}` : `packets to the API's address ${this.peer.local}`;
    throw new SelfLockoutError(
      `${label}blocking ${canonical} (${direction}) would drop ${whose} and lock you out of the API; send "force": true to do it anyway`,
    );
  }

  /** check() for each item, naming the first offender by index; yields to the event loop between slices. */
  async checkMany(blocks: readonly BlockIntent[], forceAll = false): Promise<void> {
    if (this.idle || forceAll) return;
    for (let i = 0; i < blocks.length; i++) {
      if (i > 0 && i % ITEMS_PER_SLICE === 0) await yieldToEventLoop();
      this.check(blocks[i]!, false, `items[${i}]: `);
    }
  }
}
