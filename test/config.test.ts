import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig, parseListen } from '../src/config.js';

const work = mkdtempSync(join(tmpdir(), 'xw-config-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

let files = 0;
const file = (text: string) => {
  const path = join(work, `xdpwall-${files++}.yaml`);
  writeFileSync(path, text);
  return path;
};

describe('configuration', () => {
  it('reads an interface\'s own default policy, kept when --iface names the same interface', () => {
    const path = file(`
interfaces: [eth0, { name: eth1, policy: { ingress: accept } }, { name: lab/veth1, mode: generic, policy: { egress: drop } }]
policy: { ingress: drop }
`);
    const config = loadConfig(path);
    expect(config.policy).toEqual({ ingress: 'drop', egress: 'accept' });
    expect(config.interfaces).toEqual([
      { name: 'eth0', mode: 'auto' },
      { name: 'eth1', mode: 'auto', policy: { ingress: 'accept' } },
      { name: 'lab/veth1', mode: 'generic', policy: { egress: 'drop' } },
    ]);
    expect(loadConfig(path, { interfaces: ['eth1', 'eth2'] }).interfaces).toEqual([
      { name: 'eth1', mode: 'auto', policy: { ingress: 'accept' } },
      { name: 'eth2', mode: 'auto' },
    ]);
    expect(() => loadConfig(file('interfaces: [{ name: eth1, policy: { ingress: reject } }]'))).toThrow('interface eth1: policy.ingress must be accept or drop');
    expect(() => loadConfig(file('interfaces: [{ name: eth1, policy: { forward: drop } }]'))).toThrow('interface eth1: policy.forward: only ingress and egress');
    expect(() => loadConfig(file('interfaces: [{ name: eth1, policy: drop }]'))).toThrow('interface eth1: policy must be a mapping');
  });

  it('has safe defaults', () => {
    const config = loadConfig(undefined);
    expect(config).toMatchObject({
      interfaces: [],
      listen: { kind: 'tcp', host: '127.0.0.1', port: 7070 },
      stateDir: '/var/lib/xdpwall',
      capacity: { cidrV4: 1 << 20, cidrV6: 1 << 18, flows: 1 << 18 },
    });
    expect(config.instance).toMatch(/^[0-9a-f]{12}$/);
  });

  it('reads a YAML file with per-interface modes, and flags override it', () => {
    const path = file(`
interfaces: [eth0, { name: lab/veth1, mode: generic }]
mode: native
listen: unix:/run/xdpwall/api.sock
stateDir: /tmp/xw-state
capacity: { cidrV4: 4096, timedBlocks: 200000 }
`);
    const fromFile = loadConfig(path);
    expect(fromFile.interfaces).toEqual([
      { name: 'eth0', mode: 'native' },
      { name: 'lab/veth1', mode: 'generic' },
    ]);
    expect(fromFile.listen).toEqual({ kind: 'unix', path: '/run/xdpwall/api.sock' });
    expect(fromFile.capacity.cidrV4).toBe(4096);
    expect(fromFile.capacity.timedBlocks).toBe(200_000);
    expect(fromFile.capacity.rateBuckets).toBeUndefined();

    const overridden = loadConfig(path, { interfaces: ['eth9'], mode: 'auto', listen: '[::1]:9000' });
    expect(overridden.interfaces).toEqual([{ name: 'eth9', mode: 'auto' }]);
    expect(overridden.listen).toEqual({ kind: 'tcp', host: '::1', port: 9000 });
  });

  it('derives the pin instance from the state directory', () => {
    expect(loadConfig(undefined, { stateDir: '/a' }).instance).not.toBe(loadConfig(undefined, { stateDir: '/b' }).instance);
    expect(loadConfig(undefined, { stateDir: '/a' }).instance).toBe(loadConfig(undefined, { stateDir: '/a/' }).instance);
  });

  it.each([
    ['interfaces: eth0', /interfaces must be a list/],
    ['mode: turbo', /mode must be auto, native or generic/],
    ['capacity: { flows: -1 }', /capacity.flows must be a positive integer/],
    ['capacity: { timedBlocks: 0 }', /capacity.timedBlocks must be a positive integer/],
    ['listen: 7070', /listen must be a string/],
    ['interfaces: [{ mode: native }]', /each interface needs a name/],
    ['[1, 2', /not valid YAML/],
  ])('rejects %s', (text, message) => {
    expect(() => loadConfig(file(text))).toThrow(expect.objectContaining({ code: 'CONFIG_ERROR', message: expect.stringMatching(message) }));
  });

  it.each(['a/b/c', 'ns/', 'this-name-is-too-long0', '../etc'])('rejects interface name %s', (name) => {
    expect(() => loadConfig(undefined, { interfaces: [name] })).toThrow(/is not IFNAME or NETNS\/IFNAME/);
  });

  it.each(['7070', 'localhost', 'unix:', 'host:99999'])('rejects listen %s', (text) => {
    expect(() => parseListen(text)).toThrow(/neither HOST:PORT nor unix:PATH|no socket path/);
  });

  it('reports a missing config file', () => {
    expect(() => loadConfig('/nonexistent/xdpwall.yaml')).toThrow(/cannot read config file/);
  });
});
