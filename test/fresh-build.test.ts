// The netns project's global setup refuses a build older than its sources
// (netns-tests/lib/fresh-build.ts), checked on a throwaway tree with set mtimes.
import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { staleBuildMessage } from '../netns-tests/lib/fresh-build.js';

const trees: string[] = [];
afterEach(() => {
  for (const tree of trees.splice(0)) rmSync(tree, { recursive: true, force: true });
});

/** A tree whose files have the given ages in seconds (larger: older). */
function tree(files: Record<string, number>): string {
  const root = mkdtempSync(join(tmpdir(), 'xwt-build-'));
  trees.push(root);
  const now = Date.now() / 1000;
  for (const [path, age] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), '');
    utimesSync(join(root, path), now - age, now - age);
  }
  return root;
}

const fresh = {
  'src/a.ts': 100, 'api/b.ts': 100, 'src/types.d.ts': 1,
  'dist/src/a.js': 50, 'dist/api/b.js': 50,
  'xdp/Makefile': 100, 'xdp/x.bpf.c': 100, 'xdp/lib/h.h': 100, 'xdp/build/xdpwall.bpf.o': 50,
  'addon/binding.gyp': 100, 'addon/src/m.cc': 100, 'addon/build/Release/xdpwall.node': 50,
};

describe('the stale-build check of the netns project', () => {
  it('passes a build newer than every source (declaration files are not compiled)', () => {
    expect(staleBuildMessage(tree(fresh))).toBeNull();
  });

  it.each([
    ['an edited TypeScript source', { 'src/a.ts': 10 }, 'src/a.ts is newer than dist/src/a.js'],
    ['a new TypeScript source', { 'api/new.ts': 10 }, 'dist/api/new.js is missing'],
    ['an edited BPF header', { 'xdp/lib/h.h': 10 }, 'xdp/lib/h.h is newer than xdp/build/xdpwall.bpf.o'],
    ['an edited addon source', { 'addon/src/m.cc': 10 }, 'addon/src/m.cc is newer than addon/build/Release/xdpwall.node'],
  ])('refuses %s in one line naming it', (_what, change, reason) => {
    expect(staleBuildMessage(tree({ ...fresh, ...change }))).toBe(`the build is stale: ${reason}; run \`npm run build\``);
  });

  it('counts the other stale outputs', () => {
    expect(staleBuildMessage(tree({ ...fresh, 'src/a.ts': 10, 'api/b.ts': 10 }))).toMatch(/\(and 1 more\); run `npm run build`$/);
  });
});
