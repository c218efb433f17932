// The compiler's answer for tables of protocol and destination-port rules
// (PolFlags.portFirst): per port interval, the position + 1 of the first
// rule a TCP and a UDP packet of it match. The kernel trusts it without
// looking at a bitmap (xdp/lib/rules.h), so every entry is checked here
// against the rules by hand. Pure: no kernel.
import { describe, expect, it } from 'vitest';
import { compileTable } from '../src/policy/compile.js';
import { PolFlags } from '../src/datapath/abi.js';
import { classRule, prefix } from './lib/policy.js';

const TCP = 6;
const UDP = 17;

/** The answer for a port: [tcp, udp] positions + 1 of its interval. */
function answer(c: ReturnType<typeof compileTable>, port: number): [number, number] {
  const interval = c.ports.dport ? c.ports.dport[port]! : 0;
  return [c.portFirst![2 * interval]!, c.portFirst![2 * interval + 1]!];
}

describe('compileTable: the protocol-and-port answer', () => {
  it('gives each port interval the first matching rule for TCP and for UDP', () => {
    const c = compileTable([
      classRule({ kernelId: 1, proto: TCP, dstPort: { lo: 80, hi: 80 } }), // position 0
      classRule({ kernelId: 2, proto: UDP, dstPort: { lo: 53, hi: 53 } }), // 1
      classRule({ kernelId: 3, proto: TCP, dstPort: { lo: 1, hi: 1023 } }), // 2
      classRule({ kernelId: 4, proto: UDP }), // 3: every UDP port
      classRule({ kernelId: 5, proto: 1 }), // 4: ICMP, never a TCP/UDP answer
    ]);
    expect(c.flags & PolFlags.portFirst).toBe(PolFlags.portFirst);
    expect(answer(c, 80)).toEqual([1, 4]);
    expect(answer(c, 53)).toEqual([3, 2]);
    expect(answer(c, 79)).toEqual([3, 4]);
    expect(answer(c, 1023)).toEqual([3, 4]);
    expect(answer(c, 1024)).toEqual([0, 4]); // no TCP rule covers it
    expect(answer(c, 0)).toEqual([0, 4]);
    expect(answer(c, 65535)).toEqual([0, 4]);
  });

  it('a table without port constraints answers from interval 0 alone', () => {
    const c = compileTable([classRule({ kernelId: 1, proto: UDP }), classRule({ kernelId: 2, proto: null })]);
    expect(c.ports.dport).toBeUndefined();
    expect(c.portFirst).toEqual(Uint16Array.from([2, 1]));
  });

  it('is not made when a rule constrains another field, or for an empty table', () => {
    const withSource = compileTable([
      classRule({ kernelId: 1, proto: TCP, dstPort: { lo: 22, hi: 22 } }),
      classRule({ kernelId: 2, proto: TCP, dstPort: { lo: 22, hi: 22 }, src: prefix('198.18.0.0/16') }),
    ]);
    expect(withSource.flags & PolFlags.portFirst).toBe(0);
    expect(withSource.portFirst).toBeUndefined();
    const withFlags = compileTable([classRule({ kernelId: 1, proto: TCP, tcpFlags: { mask: 0x12, set: 0x02 } })]);
    expect(withFlags.flags & PolFlags.portFirst).toBe(0);
    expect(compileTable([]).flags & PolFlags.portFirst).toBe(0);
  });
});
