// One frame of `xdpwall top` from two fixed samples: rates by reason (drops
// first), busiest rules only when the API has them, flows by current rate,
// escaped text, and the frame fits the terminal.
import { describe, expect, it } from 'vitest';
import { renderTop, type TopSample } from '../cli/top-view.js';
import type { StatsReport } from '../src/stats/report.js';
import type { FlowRecord } from '../src/flows/query.js';

const pair = (packets: number, bytes: number) => ({ packets, bytes });

function stats(passPackets: number, dropPackets: number): StatsReport {
  const ingress = {
    verdicts: { pass: pair(passPackets, passPackets * 100), drop: pair(dropPackets, dropPackets * 60) },
    reasons: { pass_no_match: pair(passPackets, passPackets * 100), ...(dropPackets ? { deny_src_cidr: pair(dropPackets, dropPackets * 60) } : {}) },
  };
  const egress = { verdicts: { pass: pair(passPackets, passPackets * 100), drop: pair(0, 0) }, reasons: { pass_no_match: pair(passPackets, passPackets * 100) } };
  return { interfaces: [{ iface: 'lab/xws0', ifindex: 2, ingress, egress }], totals: { ingress, egress }, series: [] };
}

function flow(src: string, srcPort: number, inBytes: number, outBytes: number): FlowRecord {
  return {
    proto: 'udp', src, srcPort, dst: '198.18.0.2', dstPort: 9000, iface: 'lab/xws0',
    ingress: pair(inBytes / 100, inBytes), egress: pair(outBytes / 100, outBytes),
    firstSeen: '2026-12-02T13:00:00.000Z', lastSeen: '2026-12-02T13:00:02.000Z', tcpFlags: [],
  };
}

const before: TopSample = { at: 10_000, stats: stats(1_000, 0), flows: [flow('198.18.0.1', 1, 50_000, 50_000), flow('198.18.0.3', 3, 10_000, 0)] };
const after: TopSample = { at: 12_000, stats: stats(1_200, 500), flows: [flow('198.18.0.1', 1, 50_000, 50_000), flow('198.18.0.3', 3, 30_000, 0)] };
const options = { width: 120, height: 30, source: 'unix:/run/xdpwall/api.sock', time: '13:00:02' };

describe('renderTop', () => {
  it('shows rates per second by reason, drops first, and flows by current rate', () => {
    const lines = renderTop(before, after, options);
    expect(lines[0]).toBe('xdpwall top — unix:/run/xdpwall/api.sock — 13:00:02   in: pass 100 pkt/s, drop 250 pkt/s   (q quits)');
    expect(lines.slice(2, 6)).toEqual([
      'REASON         DIR      PKT/S     BYTES/S  PACKETS',
      'deny_src_cidr  ingress    250  14.6 KiB/s      500',
      'pass_no_match  ingress    100   9.8 KiB/s    1,200',
      'pass_no_match  egress     100   9.8 KiB/s    1,200',
    ]);
    const flows = lines.slice(lines.findIndex((line) => line.startsWith('PROTO')) + 1);
    // 198.18.0.3 moved 20 kB in 2 s; 198.18.0.1 is bigger but idle.
    expect(flows[0]).toMatch(/^udp\s+198\.18\.0\.3:3\s+198\.18\.0\.2:9000\s+lab\/xws0\s+300\s+29\.3 KiB\s+0\s+0 B\s+9\.8 KiB\/s$/);
    expect(flows[1]).toMatch(/^udp\s+198\.18\.0\.1:1 .* 0 B\/s$/);
    expect(lines.some((line) => line.startsWith('RULE'))).toBe(false);
  });

  it('lists the busiest rules when the API has /v1/rules', () => {
    const lines = renderTop(
      { ...before, rules: [{ id: 1, action: 'drop', proto: 'tcp', dstPort: 22, comment: 'ssh', hits: pair(10, 600) }, { id: 2, action: 'pass', hits: pair(0, 0) }] },
      { ...after, rules: [{ id: 1, action: 'drop', proto: 'tcp', dstPort: 22, comment: 'ssh', hits: pair(30, 1800) }, { id: 2, action: 'pass', hits: pair(0, 0) }] },
      options,
    );
    const at = lines.indexOf('RULE  ACTION  MATCH        HITS/S  HITS  COMMENT');
    expect(at).toBeGreaterThan(0);
    expect(lines[at + 1]).toBe('1     drop    tcp port 22      10    30  ssh');
    expect(lines[at + 2]).toBe('');
  });

  it('escapes control characters from the API and fits the terminal', () => {
    const evil = { ...after, flows: [{ ...flow('198.18.0.1', 1, 100, 0), iface: 'x\x1b[2J\u202e' }] };
    const lines = renderTop(before, evil, { ...options, width: 40, height: 8 });
    expect(lines.length).toBeLessThanOrEqual(8);
    expect(lines.every((line) => line.length <= 40)).toBe(true);
    const wide = renderTop(before, evil, options).join('\n');
    expect(wide).not.toMatch(/[\x1b\u202e]/);
    expect(wide).toContain('x\\x1b[2J\\u202e');
  });

  it('treats a counter that went down (daemon restart) as counting from zero', () => {
    const lines = renderTop({ ...after, at: 0 }, { ...before, at: 1_000 }, options);
    expect(lines[0]).toContain('in: pass 1,000 pkt/s, drop 0.0 pkt/s');
  });
});
