// Rules that reference named lists ("src": "list:NAME"): the list's entries
// as the classifiers see them. The entries of one version of a list are
// parsed once (a 100k-entry list is used by every recompile of its hook),
// keyed by the stored list object, which a change replaces.
import { parseCidr } from '../rules/cidr.js';
import type { StoredList } from '../lists/store.js';
import { v4KeyAddress, v4KeyPrefixLen } from '../lists/keys.js';
import type { Prefix, PrefixList } from './reference.js';

/** A list's entries as prefixes: IPv4 straight from its keys, IPv6 through the parser. */
function prefixesOf(list: StoredList): Prefix[] {
  const prefixes: Prefix[] = [];
  for (const key of list.keys.v4) {
    const a = v4KeyAddress(key);
    prefixes.push({ family: 4, bytes: Uint8Array.of(a >>> 24, (a >>> 16) & 255, (a >>> 8) & 255, a & 255), prefixLen: v4KeyPrefixLen(key) });
  }
  for (const text of list.keys.v6) {
    const c = parseCidr(text);
    prefixes.push({ family: c.family, bytes: c.bytes, prefixLen: c.prefixLen });
  }
  return prefixes;
}

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
      const prefixes = prefixesOf(list);
      out = { name, version: `${list.id}:${list.revision}`, prefixes };
      this.parsed.set(list, out);
    }
    return out;
  }
}
