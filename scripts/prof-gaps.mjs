// What the daemon's loop ran during its longest holds: matches the LOOP_GAP
// lines that `XW_STALL_GAPS=FILE npm run stall` keeps with the main
// thread's --cpu-prof profile (both CLOCK_MONOTONIC µs) and prints, for each
// gap whose thread ran at least MIN ms, the functions the samples in it
// were in (self) and under (inclusive).
// Usage: node scripts/prof-gaps.mjs GAPS_FILE PROFILE [MIN_RAN_MS=15]
import { readFileSync } from 'node:fs';

const [gapsFile, profileFile, minArg] = process.argv.slice(2);
if (!gapsFile || !profileFile) throw new Error('usage: node scripts/prof-gaps.mjs GAPS_FILE PROFILE [MIN_RAN_MS]');
const minRanUs = Number(minArg ?? 15) * 1000;
const profile = JSON.parse(readFileSync(profileFile, 'utf8'));
const nodes = new Map(profile.nodes.map((node) => [node.id, node]));
const parents = new Map();
for (const node of profile.nodes) for (const child of node.children ?? []) parents.set(child, node.id);
const label = (id) => {
  const { functionName, url, lineNumber } = nodes.get(id).callFrame;
  return `${functionName || '(anonymous)'} ${url.split('/').slice(-2).join('/')}:${lineNumber + 1}`;
};
const times = [];
let t = profile.startTime;
for (const delta of profile.timeDeltas) times.push((t += delta));

let phase = '';
for (const line of readFileSync(gapsFile, 'utf8').split('\n')) {
  const marker = /^PHASE \d+ (.*)$/.exec(line);
  if (marker) phase = marker[1];
  const gap = /^LOOP_GAP (\d+) (\d+) (\d+) (\d+)$/.exec(line);
  if (!gap) continue;
  const [from, to, ran, waited] = gap.slice(1).map(Number);
  if (ran < minRanUs) continue;
  const self = new Map();
  const inclusive = new Map();
  let samples = 0;
  for (let i = 0; i < times.length; i++) {
    if (times[i] < from || times[i] > to) continue;
    const id = profile.samples[i];
    if (nodes.get(id).callFrame.functionName === '(idle)') continue;
    samples++;
    self.set(label(id), (self.get(label(id)) ?? 0) + 1);
    const seen = new Set();
    for (let at = id; at !== undefined; at = parents.get(at)) seen.add(label(at));
    for (const name of seen) inclusive.set(name, (inclusive.get(name) ?? 0) + 1);
  }
  const top = (map, n) => [...map].sort((a, b) => b[1] - a[1]).slice(0, n).map(([name, count]) => `    ${String(count).padStart(4)} ${name}`).join('\n');
  console.log(`\n[${phase}] held ${((to - from) / 1000).toFixed(1)} ms, ran ${(ran / 1000).toFixed(1)} ms, waited ${(waited / 1000).toFixed(1)} ms; ${samples} samples`);
  console.log(`  self:\n${top(self, 8)}\n  inclusive:\n${top(inclusive, 22)}`);
}
