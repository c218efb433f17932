// Named lists (`/v1/lists`): the names and values the API, the CLI, feeds and
// the --rules file share.
import { InvalidArgumentError } from '../errors.js';

export const LIST_ACTIONS = ['deny', 'allow', 'none'] as const;
export type ListAction = (typeof LIST_ACTIONS)[number];

/** Who manages a list: the API, a feed of the configuration, or the --rules file. */
export type ListOrigin = 'api' | 'feed' | 'file';

export const isListAction = (value: unknown): value is ListAction =>
  typeof value === 'string' && (LIST_ACTIONS as readonly string[]).includes(value);

export const LIST_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

export function checkListName(name: string): void {
  if (!LIST_NAME.test(name)) {
    throw new InvalidArgumentError(`list name "${name}": 1-64 characters, letters, digits, "_", "." and "-", starting with a letter or digit`);
  }
}

/** A list as the API reports it (without its entries). */
export interface ListView {
  name: string;
  action: ListAction;
  direction: 'src' | 'dst';
  comment: string | null;
  count: number;
  revision: number;
  updatedAt: string;
  origin: ListOrigin;
  hits: { packets: number; bytes: number };
}
