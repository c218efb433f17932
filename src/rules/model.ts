// The rule model shared by the store, the services and the API.
import type { IpFamily } from './cidr.js';

export const DIRECTIONS = ['src', 'dst'] as const;
export type BlockDirection = (typeof DIRECTIONS)[number];

export function isBlockDirection(value: unknown): value is BlockDirection {
  return typeof value === 'string' && (DIRECTIONS as readonly string[]).includes(value);
}

/** A CIDR deny rule as it is stored and reported. */
export interface BlockRule {
  /** Stable id; also the kernel's rule id in xw_rule_value and xw_rule_stats. */
  id: number;
  /** Canonical CIDR text. */
  cidr: string;
  family: IpFamily;
  prefixLen: number;
  /** Network address, 4 or 16 bytes in network order. */
  network: Buffer;
  direction: BlockDirection;
  comment: string | null;
  /** ISO 8601. */
  createdAt: string;
}

/** Largest rule id the kernel's __u32 rule_id can carry. */
export const MAX_RULE_ID = 0xffff_ffff;
