// Offline checks of deploy/: the systemd unit with systemd-analyze, the
// Kubernetes manifests against the API schemas, the Dockerfile with
// dockerfile-utils, and the daemon configuration each of them ships.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { validate as validateDockerfile, ValidationSeverity, type ValidatorSettings } from 'dockerfile-utils';
import { DaemonSet } from 'kubernetes-models/apps/v1';
import { ConfigMap } from 'kubernetes-models/v1';
import { loadConfig } from '../src/config.js';
import { parseRulesFile } from '../src/fleet/rules-file.js';
import { plannedMapMemory } from '../src/datapath/datapath.js';
import { memoryLimitBytes } from '../src/datapath/memory.js';
import { BPF_OBJECT_PATH } from '../src/paths.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const deployFile = (path: string): string => join(ROOT, 'deploy', path);
const read = (path: string): string => readFileSync(deployFile(path), 'utf8');
const CLI_ENTRY = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).bin.xdpwall as string;

/** Loads a YAML daemon configuration through the daemon's own parser. */
function loadConfigText(text: string) {
  const dir = mkdtempSync(join(tmpdir(), 'xdpwall-deploy-'));
  try {
    writeFileSync(join(dir, 'config.yaml'), text);
    return loadConfig(join(dir, 'config.yaml'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const HAS_SYSTEMD_ANALYZE = spawnSync('systemd-analyze', ['--version']).status === 0;
if (!HAS_SYSTEMD_ANALYZE) {
  console.warn('deploy.test: systemd-analyze not found, the unit is NOT verified (apt-get install systemd)');
}

describe('deploy/systemd', () => {
  const unit = read('systemd/xdpwall.service');

  it.skipIf(!HAS_SYSTEMD_ANALYZE)('passes systemd-analyze verify with no output (skipped without systemd-analyze)', () => {
    // The unit names /usr/bin/node (Debian, NodeSource); verify checks that the
    // executable exists, so on a machine whose node lives elsewhere check that one.
    const text = existsSync('/usr/bin/node') ? unit : unit.replace('/usr/bin/node ', `${process.execPath} `);
    const dir = mkdtempSync(join(tmpdir(), 'xdpwall-unit-'));
    try {
      const path = join(dir, 'xdpwall.service');
      writeFileSync(path, text);
      const result = spawnSync('systemd-analyze', ['verify', path], { encoding: 'utf8' });
      expect(`${result.stdout}${result.stderr}`).toBe('');
      expect(result.status).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('runs the packaged CLI entry as its own user with three capabilities and a state directory', () => {
    expect(unit).toContain(`/usr/lib/xdpwall/${CLI_ENTRY} serve`);
    expect(unit).toMatch(/^User=xdpwall$/m);
    expect(unit).toMatch(/^CapabilityBoundingSet=CAP_BPF CAP_PERFMON CAP_NET_ADMIN$/m);
    expect(unit).toMatch(/^AmbientCapabilities=CAP_BPF CAP_PERFMON CAP_NET_ADMIN$/m);
    expect(unit).toMatch(/^ExecStartPre=\+\/usr\/bin\/install -d -o xdpwall -g xdpwall -m 0700 \/sys\/fs\/bpf\/xdpwall$/m);
    expect(unit).toMatch(/^BindPaths=\/sys\/fs\/bpf\/xdpwall:\/run\/xdpwall\/bpffs$/m);
    expect(unit).toMatch(/^IPAddressDeny=any$/m);
    expect(unit).toMatch(/^StateDirectory=xdpwall$/m);
    expect(unit).toMatch(/^Restart=on-failure$/m);
    expect(read('systemd/xdpwall.sysusers')).toMatch(/^u xdpwall - /m);
  });

  it.skipIf(!HAS_SYSTEMD_ANALYZE)('rates 2.5 or better in systemd-analyze security (was 4.4 as root)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'xdpwall-unit-'));
    try {
      const path = join(dir, 'xdpwall.service');
      writeFileSync(path, unit);
      const result = spawnSync('systemd-analyze', ['security', '--offline=true', '--no-pager', path], { encoding: 'utf8' });
      const exposure = /Overall exposure level for xdpwall\.service: (\d+\.\d)/.exec(result.stdout);
      expect(exposure, `${result.stdout}${result.stderr}`).not.toBeNull();
      expect(Number(exposure![1])).toBeLessThanOrEqual(2.5);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('ships an example configuration the daemon accepts', () => {
    const config = loadConfigText(read('systemd/config.yaml'));
    expect(config.interfaces.map((i) => i.name)).toEqual(['eth0']);
    expect(config.stateDir).toBe('/var/lib/xdpwall');
    expect(config.bpffsRoot).toBe('/run/xdpwall/bpffs');
  });
});

describe('deploy/kubernetes', () => {
  const documents = parseAllDocuments(read('kubernetes/daemonset.yaml')).map((doc) => {
    expect(doc.errors).toEqual([]);
    return doc.toJS() as { kind: string };
  });

  it('holds a ConfigMap and a DaemonSet that validate against the Kubernetes schemas', () => {
    expect(documents.map((doc) => doc.kind)).toEqual(['ConfigMap', 'DaemonSet']);
    expect(() => new ConfigMap(documents[0] as ConstructorParameters<typeof ConfigMap>[0]).validate()).not.toThrow();
    expect(() => new DaemonSet(documents[1] as ConstructorParameters<typeof DaemonSet>[0]).validate()).not.toThrow();
  });

  it('ships a rules file every node follows from the ConfigMap mount (updated in place, not a subPath)', () => {
    const data = (documents[0] as unknown as { data: Record<string, string> }).data;
    expect(() => parseRulesFile('/etc/xdpwall/rules.yaml', data['rules.yaml']!)).not.toThrow();
    const container = pod().containers[0]!;
    expect(container.args).toContain('--rules');
    expect(container.args![container.args!.indexOf('--rules') + 1]).toBe('/etc/xdpwall/rules.yaml');
    const mount = container.volumeMounts!.find((m) => m.name === 'config')!;
    expect([mount.mountPath, mount.subPath]).toEqual(['/etc/xdpwall', undefined]);
  });

  const pod = () => new DaemonSet(documents[1] as ConstructorParameters<typeof DaemonSet>[0]).spec!.template.spec!;
  const shippedConfig = () =>
    loadConfigText(new ConfigMap(documents[0] as ConstructorParameters<typeof ConfigMap>[0]).data!['config.yaml']!);

  it('uses the host network, bpffs, a state hostPath and /healthz probes', () => {
    expect(pod().hostNetwork).toBe(true);
    const hostPaths = (pod().volumes ?? []).map((volume) => volume.hostPath?.path).filter(Boolean);
    expect(hostPaths).toEqual(expect.arrayContaining(['/sys/fs/bpf', '/var/lib/xdpwall']));
    const container = pod().containers[0]!;
    expect(container.livenessProbe?.httpGet?.path).toBe('/healthz');
    expect(container.readinessProbe?.httpGet?.path).toBe('/healthz');
  });

  it('runs the daemon as non-root with three capabilities, RuntimeDefault seccomp and no blanket toleration', () => {
    const container = pod().containers[0]!;
    expect(container.securityContext).toMatchObject({
      runAsNonRoot: true,
      runAsUser: 10001,
      privileged: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'], add: ['BPF', 'PERFMON', 'NET_ADMIN'] },
    });
    expect(pod().securityContext?.seccompProfile?.type).toBe('RuntimeDefault');
    for (const toleration of pod().tolerations ?? []) expect(toleration.key, JSON.stringify(toleration)).toBeTruthy();
    // Only the init container that chowns the pin and state directories runs as root, with CAP_CHOWN.
    const init = pod().initContainers ?? [];
    expect(init.map((c) => c.securityContext?.capabilities?.add)).toEqual([['CHOWN', 'FOWNER']]);
    expect(init[0]!.command).toEqual(expect.arrayContaining(['10001', '/sys/fs/bpf/xdpwall', '/var/lib/xdpwall']));
  });

  it("limits memory to the maps' size at the shipped capacities on the annotated CPU count, plus the daemon", () => {
    const daemonSet = new DaemonSet(documents[1] as ConstructorParameters<typeof DaemonSet>[0]);
    const cpus = Number(daemonSet.metadata!.annotations!['xdpwall.io/memory-sized-for-cpus']);
    expect(cpus).toBeGreaterThan(0);
    const limit = memoryLimitBytes(plannedMapMemory(BPF_OBJECT_PATH, shippedConfig().capacity, cpus));
    const { resources } = pod().containers[0]!;
    expect(resources?.limits?.memory).toBe(`${limit / 2 ** 20}Mi`);
    expect(resources?.requests?.memory).toBe(`${limit / 2 ** 20}Mi`);
  });

  it('probes the port the shipped configuration listens on', () => {
    const { listen } = shippedConfig();
    expect(listen.kind).toBe('tcp');
    const container = pod().containers[0]!;
    for (const probe of [container.livenessProbe, container.readinessProbe]) {
      expect(probe?.httpGet).toMatchObject({ host: (listen as { host: string }).host, port: (listen as { port: number }).port });
    }
  });
});

describe('deploy/container', () => {
  const dockerfile = read('container/Dockerfile');

  it('has no dockerfile-utils diagnostics, warnings included', () => {
    const everything: ValidatorSettings = Object.fromEntries(
      [
        'deprecatedMaintainer', 'directiveCasing', 'emptyContinuationLine', 'instructionCasing',
        'instructionCmdMultiple', 'instructionEntrypointMultiple', 'instructionHealthcheckMultiple',
        'instructionJSONInSingleQuotes', 'instructionWorkdirRelative',
      ].map((setting) => [setting, ValidationSeverity.ERROR]),
    );
    const diagnostics = validateDockerfile(dockerfile, everything);
    expect(diagnostics.map((d) => `line ${d.range.start.line + 1}: ${d.message}`)).toEqual([]);
  });

  it('copies only paths that exist in the repository', () => {
    const sources = [...dockerfile.matchAll(/^COPY (?!--from)(.+) \S+$/gm)].flatMap((match) => match[1]!.split(' '));
    expect(sources.length).toBeGreaterThan(0);
    for (const source of sources) expect(existsSync(join(ROOT, source)), source).toBe(true);
  });

  it('runs the packaged CLI entry as uid 10001 through a node with exactly three file capabilities', () => {
    expect(dockerfile).toContain(`ENTRYPOINT ["/usr/lib/xdpwall/bin/node", "/usr/lib/xdpwall/${CLI_ENTRY}"]`);
    expect(dockerfile).toMatch(/^USER 10001:10001$/m);
    expect(dockerfile).toMatch(/setcap cap_bpf,cap_perfmon,cap_net_admin\+ep \/usr\/lib\/xdpwall\/bin\/node/);
  });

  it("checks health at the address the daemon's configuration names", () => {
    const config = /^CMD \["serve", "--config", "([^"]+)"/m.exec(dockerfile)?.[1];
    expect(config).toBeDefined();
    expect(dockerfile).toContain(`CMD ["node", "/usr/lib/xdpwall/${CLI_ENTRY}", "health", "--config", "${config}"]`);
  });
});
