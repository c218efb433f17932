// The module graph keeps its shape: the composition root on top
// (cli -> daemon -> api -> src; src alone uses the addon, a package of its
// own), no layer importing one above it,
// and no import cycles anywhere (type-only imports included: a cycle of types
// is still two modules that cannot be understood apart). Read from the
// sources, so a new file or import is checked without listing it here.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PACKAGE_ROOT } from '../src/paths.js';

/** Lowest first: a module may import its own layer and the ones below. */
const LAYERS = ['src', 'api', 'daemon', 'cli'] as const;
const ROOTS: Record<(typeof LAYERS)[number], string> = {
  src: 'src',
  api: 'api',
  daemon: 'daemon',
  cli: 'cli',
};

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sourceFiles(path);
    return /\.ts$/.test(name) && !name.endsWith('.d.ts') ? [path] : [];
  });
}

/** Relative specifiers of static imports and re-exports, and of dynamic import() calls. */
export function importsOf(text: string): string[] {
  const found: string[] = [];
  const pattern = /(?:^|[\s;])(?:import|export)\s[^'"]*?from\s*['"](\.[^'"]+)['"]|import\(\s*['"](\.[^'"]+)['"]\s*\)|^import\s+['"](\.[^'"]+)['"]/gm;
  for (const match of text.matchAll(pattern)) found.push((match[1] ?? match[2] ?? match[3]) as string);
  return found;
}

function layerOf(file: string): (typeof LAYERS)[number] | undefined {
  const rel = relative(PACKAGE_ROOT, file);
  return LAYERS.find((layer) => rel === ROOTS[layer] || rel.startsWith(`${ROOTS[layer]}/`));
}

/** file -> the project files it imports (.js specifiers name the .ts sources). */
function moduleGraph(): Map<string, string[]> {
  const files = LAYERS.flatMap((layer) => sourceFiles(join(PACKAGE_ROOT, ROOTS[layer])));
  const known = new Set(files);
  const graph = new Map<string, string[]>();
  for (const file of files) {
    const targets = importsOf(readFileSync(file, 'utf8'))
      .map((spec) => resolve(dirname(file), spec).replace(/\.js$/, '.ts'))
      .map((target) => (known.has(target) ? target : known.has(join(target, 'index.ts')) ? join(target, 'index.ts') : target))
      .filter((target) => known.has(target));
    graph.set(file, targets);
  }
  return graph;
}

/** Strongly connected components with more than one module, or a module importing itself (Tarjan). */
export function cyclesOf(graph: ReadonlyMap<string, readonly string[]>): string[][] {
  let next = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const cycles: string[][] = [];
  const visit = (node: string): void => {
    index.set(node, next);
    low.set(node, next);
    next++;
    stack.push(node);
    onStack.add(node);
    for (const target of graph.get(node) ?? []) {
      if (!index.has(target)) {
        visit(target);
        low.set(node, Math.min(low.get(node)!, low.get(target)!));
      } else if (onStack.has(target)) {
        low.set(node, Math.min(low.get(node)!, index.get(target)!));
      }
    }
    if (low.get(node) !== index.get(node)) return;
    const component: string[] = [];
    let member: string;
    do {
      member = stack.pop()!;
      onStack.delete(member);
      component.push(member);
    } while (member !== node);
    if (component.length > 1 || (graph.get(node) ?? []).includes(node)) cycles.push(component.sort());
  };
  for (const node of graph.keys()) if (!index.has(node)) visit(node);
  return cycles;
}

describe('module layers', () => {
  const graph = moduleGraph();
  const rel = (file: string): string => relative(PACKAGE_ROOT, file);

  it('reads every layer', () => {
    const layers = new Set([...graph.keys()].map(layerOf));
    expect([...layers].sort()).toEqual([...LAYERS].sort());
  });

  it('no module imports a layer above its own', () => {
    const upward = [...graph].flatMap(([file, targets]) =>
      targets
        .filter((target) => LAYERS.indexOf(layerOf(target)!) > LAYERS.indexOf(layerOf(file)!))
        .map((target) => `${rel(file)} -> ${rel(target)}`));
    expect(upward).toEqual([]);
  });

  it('has no import cycles', () => {
    expect(cyclesOf(graph).map((cycle) => cycle.map(rel))).toEqual([]);
  });

  // The checks above can fail: they see the imports and the cycles they are for.
  it('finds every import form', () => {
    expect(importsOf([
      "import { a } from './a.js';",
      "import type { B } from '../b.js';",
      "export { c } from './c.js';",
      "export * from './d.js';",
      "import './e.js';",
      "const f = await import('./f.js');",
      "import { g } from 'node:fs';",
      'import {\n  h,\n  i,\n} from "./hi.js";',
    ].join('\n'))).toEqual(['./a.js', '../b.js', './c.js', './d.js', './e.js', './f.js', './hi.js']);
  });

  it('finds a cycle of two modules and a self-import, and none in a chain', () => {
    expect(cyclesOf(new Map([['a', ['b']], ['b', ['a']], ['c', ['c']], ['d', ['a']]]))).toEqual([['a', 'b'], ['c']]);
    expect(cyclesOf(new Map([['a', ['b']], ['b', ['c']], ['c', []]]))).toEqual([]);
  });
});
