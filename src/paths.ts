// Where the package's own files are, wherever it runs from (src/ via tsx,
// dist/src/ after the build, or an installed copy).
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

function findPackageRoot(from: string): string {
  for (let dir = from; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'xdp'))) return dir;
    if (dirname(dir) === dir) throw new Error(`xdpwall package root not found above ${from}`);
  }
}

export const PACKAGE_ROOT = findPackageRoot(dirname(fileURLToPath(import.meta.url)));

/** The compiled data plane (make -C xdp). */
export const BPF_OBJECT_PATH = join(PACKAGE_ROOT, 'xdp', 'build', 'xdpwall.bpf.o');
