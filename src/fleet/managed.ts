// What the --rules file manages (origin "file"): the API refuses to change
// those entries with 409 MANAGED_BY_FILE, so a fleet's hosts stay what the
// file says. Lists carry their origin themselves (src/lists).
import { ManagedByFileError } from '../errors.js';
import type { BlockDirection } from '../rules/model.js';

export const blockKey = (cidr: string, direction: BlockDirection): string => `${direction}|${cidr}`;

export class FileManaged {
  blocks = new Set<string>();
  rules = new Set<number>();
  policy = false;
  /** The --rules file, when one is in use. */
  path: string | undefined;

  checkBlock(cidr: string, direction: BlockDirection): void {
    if (this.blocks.has(blockKey(cidr, direction))) {
      throw new ManagedByFileError(`the block ${cidr} (${direction}) comes from the rules file ${this.path}: change it there`);
    }
  }

  checkRule(id: number): void {
    if (this.rules.has(id)) throw new ManagedByFileError(`rule ${id} comes from the rules file ${this.path}: change it there`);
  }

  checkPolicy(): void {
    if (this.policy) throw new ManagedByFileError(`the default policy comes from the rules file ${this.path}: change it there`);
  }
}
