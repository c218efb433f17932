// The results as one SVG, written by hand: packets/s by filter on veth
// (bars) next to ns/packet against loaded prefixes (lines, log-log).
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { parseSizeLabel } from './context.js';
import { formatValue, type Result } from './results.js';

const WIDTH = 1290;
const HEIGHT = 560;
const FONT = 'font-family="DejaVu Sans, Helvetica, Arial, sans-serif"';
const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b', '#e377c2', '#17becf', '#bcbd22', '#7f7f7f', '#393b79', '#637939'];

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const text = (x: number, y: number, s: string, attrs = ''): string =>
  `<text x="${x.toFixed(1)}" y="${y.toFixed(1)}" ${FONT} ${attrs}>${esc(s)}</text>`;

interface Box {
  x: number;
  y: number;
  w: number;
  h: number;
}

function barPanel(rows: readonly Result[], box: Box): string {
  const bars = rows.filter((r) => r.suite === 'veth' && r.metric === 'received');
  const out = [text(box.x, box.y - 28, 'Real packets on veth: packets/s handled by the receiver (one CPU)', 'font-size="15" font-weight="bold"')];
  if (bars.length === 0) return [...out, text(box.x, box.y + 20, 'no veth results yet', 'font-size="13"')].join('\n');
  const labelW = 330;
  const max = Math.max(...bars.map((b) => b.value));
  const rowH = box.h / bars.length;
  const scale = (v: number): number => ((box.w - labelW - 70) * v) / max;
  bars.forEach((bar, i) => {
    const y = box.y + i * rowH;
    const w = Math.max(1, scale(bar.value));
    const color = bar.case.startsWith('xdpwall') ? '#1f77b4' : bar.case.startsWith('bare') ? '#7f7f7f' : '#ff7f0e';
    out.push(text(box.x + labelW - 8, y + rowH * 0.55 + 4, bar.case, 'font-size="11" text-anchor="end"'));
    out.push(`<rect x="${box.x + labelW}" y="${(y + rowH * 0.15).toFixed(1)}" width="${w.toFixed(1)}" height="${(rowH * 0.7).toFixed(1)}" fill="${color}"/>`);
    out.push(text(box.x + labelW + w + 6, y + rowH * 0.55 + 4, `${formatValue(bar.value, bar.unit)} pps`, 'font-size="12"'));
  });
  out.push(`<line x1="${box.x + labelW}" y1="${box.y}" x2="${box.x + labelW}" y2="${box.y + box.h}" stroke="#333"/>`);
  out.push(text(box.x + labelW, box.y + box.h + 22, 'blue: xdpwall, grey: bare XDP_DROP, orange: others (no filter, xdp-filter, nftables, iptables)', 'font-size="11" fill="#555"'));
  return out.join('\n');
}

interface Series {
  name: string;
  points: Array<{ x: number; y: number }>;
}

function ladderSeries(rows: readonly Result[]): { series: Series[]; flat: Array<{ name: string; y: number }> } {
  const byKind = new Map<string, Series>();
  const flat: Array<{ name: string; y: number }> = [];
  for (const r of rows) {
    if (r.suite !== 'ladder' || r.metric !== 'time') continue;
    const m = /^xdpwall (.+) \((\S+) prefix(?:es)?\)$/.exec(r.case);
    const size = m ? parseSizeLabel(m[2] as string) : null;
    if (!m || size === null) {
      if (!r.case.startsWith('churn')) flat.push({ name: r.case, y: r.value });
      continue;
    }
    const kind = m[1] as string;
    const series = byKind.get(kind) ?? { name: kind, points: [] };
    series.points.push({ x: size, y: r.value });
    byKind.set(kind, series);
  }
  for (const s of byKind.values()) s.points.sort((a, b) => a.x - b.x);
  return { series: [...byKind.values()], flat };
}

function linePanel(rows: readonly Result[], box: Box): string {
  const { series, flat } = ladderSeries(rows);
  const out = [text(box.x, box.y - 28, 'BPF_PROG_TEST_RUN: ns per packet vs prefixes loaded (log-log)', 'font-size="15" font-weight="bold"')];
  if (series.length === 0) return [...out, text(box.x, box.y + 20, 'no ladder results yet', 'font-size="13"')].join('\n');
  const ys = [...series.flatMap((s) => s.points.map((p) => p.y)), ...flat.map((f) => f.y)];
  const yLo = Math.pow(10, Math.floor(Math.log10(Math.min(...ys))));
  const yHi = Math.pow(10, Math.ceil(Math.log10(Math.max(...ys))));
  const xLo = 1;
  const xHi = 1e6;
  const plot = { x: box.x + 55, y: box.y, w: box.w - 75, h: box.h - 40 };
  const px = (x: number): number => plot.x + (plot.w * Math.log10(Math.max(x, xLo) / xLo)) / Math.log10(xHi / xLo);
  const py = (y: number): number => plot.y + plot.h - (plot.h * Math.log10(y / yLo)) / Math.log10(yHi / yLo);
  // Axes and grid.
  for (let y = yLo; y <= yHi * 1.0001; y *= 10) {
    for (const k of [1, 2, 5]) {
      const v = y * k;
      if (v > yHi * 1.0001) continue;
      out.push(`<line x1="${plot.x}" y1="${py(v).toFixed(1)}" x2="${plot.x + plot.w}" y2="${py(v).toFixed(1)}" stroke="#e5e5e5"/>`);
      out.push(text(plot.x - 6, py(v) + 4, `${v}`, 'font-size="11" text-anchor="end"'));
    }
  }
  for (const [x, label] of [[1, '1'], [10, '10'], [100, '100'], [1e3, '1k'], [1e4, '10k'], [1e5, '100k'], [1e6, '1M']] as const) {
    out.push(`<line x1="${px(x).toFixed(1)}" y1="${plot.y}" x2="${px(x).toFixed(1)}" y2="${plot.y + plot.h}" stroke="#e5e5e5"/>`);
    out.push(text(px(x), plot.y + plot.h + 16, label, 'font-size="11" text-anchor="middle"'));
  }
  out.push(`<rect x="${plot.x}" y="${plot.y}" width="${plot.w}" height="${plot.h}" fill="none" stroke="#333"/>`);
  out.push(text(plot.x + plot.w / 2, plot.y + plot.h + 34, 'prefixes loaded (IPv4 up to 1M, IPv6 up to 256k)', 'font-size="12" text-anchor="middle"'));
  out.push(text(box.x + 12, plot.y + plot.h / 2, 'ns / packet', `font-size="12" text-anchor="middle" transform="rotate(-90 ${box.x + 12} ${plot.y + plot.h / 2})"`));
  // Flat references (bare drop, parse-only): dashed.
  flat.forEach((f, i) => {
    const y = py(f.y);
    out.push(`<line x1="${plot.x}" y1="${y.toFixed(1)}" x2="${plot.x + plot.w}" y2="${y.toFixed(1)}" stroke="#555" stroke-dasharray="${i === 0 ? '6 4' : '2 3'}"/>`);
    out.push(text(plot.x + plot.w - 6, y - 4, `${f.name}: ${f.y.toFixed(1)} ns`, 'font-size="11" fill="#333" text-anchor="end"'));
  });
  series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length] as string;
    const dash = s.name.includes('v6') ? ' stroke-dasharray="7 3"' : '';
    const d = s.points.map((p, j) => `${j === 0 ? 'M' : 'L'}${px(p.x).toFixed(1)},${py(p.y).toFixed(1)}`).join(' ');
    out.push(`<path d="${d}" fill="none" stroke="${color}" stroke-width="2.2"${dash}/>`);
    for (const p of s.points) out.push(`<circle cx="${px(p.x).toFixed(1)}" cy="${py(p.y).toFixed(1)}" r="3.2" fill="${color}"/>`);
    // Legend in two columns in the empty band under the bare XDP_DROP line, with
    // the figure at the largest size.
    const last = s.points[s.points.length - 1];
    const rows = Math.ceil(series.length / 2);
    const lx = plot.x + 10 + (i >= rows ? plot.w / 2 : 0);
    const ly = plot.y + plot.h - 8 - (rows - 1 - (i % rows)) * 15;
    out.push(`<line x1="${lx}" y1="${ly - 4}" x2="${lx + 24}" y2="${ly - 4}" stroke="${color}" stroke-width="2.2"${dash}/>`);
    out.push(text(lx + 30, ly, `${s.name}${last ? `: ${last.y.toFixed(0)} ns at ${last.x.toLocaleString('en-US')}` : ''}`, 'font-size="11"'));
  });
  return out.join('\n');
}

export function renderPlot(rows: readonly Result[]): string {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}">`,
    `<rect width="${WIDTH}" height="${HEIGHT}" fill="#fff"/>`,
    barPanel(rows, { x: 10, y: 60, w: 700, h: 420 }),
    linePanel(rows, { x: 720, y: 60, w: 550, h: 460 }),
    '</svg>',
    '',
  ].join('\n');
}

export function writePlot(path: string, rows: readonly Result[]): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, renderPlot(rows));
}
