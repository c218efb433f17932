// Rules that reference named lists ("src": "list:NAME"): the list's entries
// as the classifiers see them. The entries of one version of a list are
// parsed once (a 100k-entry list is used by every recompile of its hook),
// keyed by the stored list object, which a change replaces.
import { parseCidr } from '../rules/cidr.js';
import type { StoredList } from '../lists/store.js';
import type { Prefix, PrefixList } from './reference.js';

export class ListPrefixes {
  private readonly parsed = new WeakMap<StoredList, PrefixList>();

  /** `find(name)`: the list as stored now, undefined when there is none. */
  constructor(private readonly find: (name: string) => StoredList | undefined) {}

  /** The list's entries; an absent list is empty (its rules match nothing). */
  of(name: string): PrefixList {
    const list = this.find(name);
    if (!list) return { name, version: 'absent', prefixes: [] };
    let out = this.parsed.get(list);
    if (!out) {
      const prefixes: Prefix[] = list.texts.map((text) => {
        const c = parseCidr(text);
        return { family: c.family, bytes: c.bytes, prefixLen: c.prefixLen };
      });
      out = { name, version: `${list.id}:${list.revision}`, prefixes };
      this.parsed.set(list, out);
    }
    return out;
  }
}
