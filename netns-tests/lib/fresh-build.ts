// Global setup of the netns project: its suites run the built daemon and CLI
// (dist/), the BPF object and the addon, not the TypeScript sources, so a
// build older than its sources would test yesterday's code and pass or fail
// for the wrong reason. Refuse to start, in one line, until `npm run build`.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** Files under `dir` of the tree at `root` (paths relative to root) whose names pass `keep`. */
function filesUnder(root: string, dir: string, keep: (name: string) => boolean): string[] {
  const top = join(root, dir);
  if (!existsSync(top)) return [];
  return readdirSync(top, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile() && keep(entry.name))
    .map((entry) => relative(root, join(entry.parentPath, entry.name)));
}

const mtimeMs = (root: string, path: string): number | undefined => {
  const full = join(root, path);
  return existsSync(full) ? statSync(full).mtimeMs : undefined;
};

/** A build output and the sources it is made from. */
interface Output {
  path: string;
  sources: string[];
}

/** Every output the netns suites run, with its sources, in the tree at `root`. */
export function buildOutputs(root: string): Output[] {
  const ts = (name: string) => name.endsWith('.ts') && !name.endsWith('.d.ts');
  const typescript = ['src', 'api', 'cli', 'daemon'].flatMap((dir) => filesUnder(root, dir, ts));
  return [
    ...typescript.map((source) => ({ path: join('dist', source.replace(/\.ts$/, '.js')), sources: [source] })),
    {
      path: 'xdp/build/xdpwall.bpf.o',
      sources: ['xdp/Makefile', ...filesUnder(root, 'xdp', (n) => n.endsWith('.c') || n.endsWith('.h')).filter((p) => !p.startsWith('xdp/build/'))],
    },
    {
      path: 'addon/build/Release/xdpwall.node',
      sources: ['addon/binding.gyp', ...filesUnder(root, 'addon/src', () => true)],
    },
  ];
}

/** What is missing or older than its sources, one entry per output; empty when the build is fresh. */
export function staleOutputs(root: string): string[] {
  const stale: string[] = [];
  for (const { path, sources } of buildOutputs(root)) {
    const built = mtimeMs(root, path);
    if (built === undefined) {
      stale.push(`${path} is missing`);
      continue;
    }
    const newer = sources.find((source) => (mtimeMs(root, source) ?? 0) > built);
    if (newer) stale.push(`${newer} is newer than ${path}`);
  }
  return stale;
}

/** The one-line refusal for a stale build in the tree at `root`, or null when it is fresh. */
export function staleBuildMessage(root: string): string | null {
  const stale = staleOutputs(root);
  if (stale.length === 0) return null;
  const more = stale.length > 1 ? ` (and ${stale.length - 1} more)` : '';
  return `the build is stale: ${stale[0]}${more}; run \`npm run build\``;
}

export default function setup(): void {
  const message = staleBuildMessage(REPO_ROOT);
  if (message === null) return;
  const error = new Error(message);
  error.stack = message; // one line, no trace: nothing here is a bug to debug
  throw error;
}
