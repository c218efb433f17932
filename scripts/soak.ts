// npm run soak: 300 s at 300 API requests/s (reads and writes) against the
// real daemon with traffic flowing through the lab veth it filters. Passes
// with 0 errors and resident memory growing less than 10% after the warm-up;
// prints the report (latency percentiles, RSS, traffic) as JSON.
// XW_SOAK_SECONDS and XW_SOAK_RATE override the figures.
import { runSoak } from '../netns-tests/lib/soak.js';
import { assertBuilt, assertRoot } from '../netns-tests/lib/lab-env.js';
import { staleBuildMessage } from '../netns-tests/lib/fresh-build.js';
import { fileURLToPath } from 'node:url';

assertRoot();
assertBuilt();
const stale = staleBuildMessage(fileURLToPath(new URL('..', import.meta.url)));
if (stale) {
  console.error(`soak: ${stale}`);
  process.exit(1);
}

const durationS = Number(process.env.XW_SOAK_SECONDS ?? 300);
const rate = Number(process.env.XW_SOAK_RATE ?? 300);
const report = await runSoak({ durationS, rate, subnet: 58, progress: (line) => console.error(`soak: ${line}`) });
console.log(JSON.stringify(report, null, 2));
const failures = [
  ...(report.errors > 0 ? [`${report.errors} errors, e.g. ${report.errorSamples.join(' | ')}`] : []),
  ...(report.completed < report.requested * 0.99 ? [`${report.completed} of ${report.requested} requests completed (${report.achievedRate}/s)`] : []),
  ...(report.rssGrowth >= 0.1 ? [`RSS grew ${(report.rssGrowth * 100).toFixed(1)}% after the warm-up (limit 10%)`] : []),
];
console.error(
  `soak: ${report.completed} requests in ${report.durationS} s (${report.achievedRate}/s), ${report.errors} errors, ` +
    `p50 ${report.latencyMs.p50} ms, p99 ${report.latencyMs.p99} ms, max ${report.latencyMs.max} ms; ` +
    `RSS ${report.rssMiB.start} -> ${report.rssMiB.baseline} (after warm-up) -> ${report.rssMiB.end} MiB (${(report.rssGrowth * 100).toFixed(1)}%); ` +
    `${report.traffic.received}/${report.traffic.sent} datagrams answered; ${report.rulesAtEnd} rules`,
);
if (failures.length > 0) {
  console.error(`soak: FAILED: ${failures.join('; ')}`);
  process.exit(1);
}
