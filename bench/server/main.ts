// Benchmark of the whole server, per transport, with the emulated runtime: cheap-request
// throughput against a bare baseline server of the same transport, streaming throughput and
// per-token latency, and how many idle connections fit in 100 MiB. The load clients are separate
// processes (bench/load/, autocannon for HTTP) on loopback.
//
// Writes the generated regions of docs/benchmarks.md, docs/benchmarks-chart.svg and
// dist/bench/server-results.json. Usage: npm run bench:server [-- --seconds S --rounds R]
// [-- --quick] (a short run through every suite and output, figures not for keeping); or
// node dist/bench/server/main.js --from-results to redraw both from the saved figures.

import * as path from 'path';
import { writeChart } from './chart';
import { killAllChildren, log, machine, openFilesLimit, REPO } from './harness';
import { writeReport } from './report';
import { loadResults, type Results, RESULTS_FILE, saveResults } from './results';
import { settingsFromArguments } from './settings';
import { measureCheapRequests } from './suites/cheap-requests';
import { measureScale } from './suites/scale';
import { measureStreaming } from './suites/streaming';

const DOC = path.join(REPO, 'docs', 'benchmarks.md');
const CHART = path.join(REPO, 'docs', 'benchmarks-chart.svg');

/** The command line as typed: through npm when npm ran it, else node and this script. */
function commandLine(): string {
  const args = process.argv.slice(2);
  const script = process.env.npm_lifecycle_event;
  if (script) return [`npm run ${script}`, ...(args.length > 0 ? ['--', ...args] : [])].join(' ');
  return ['node', path.relative(REPO, process.argv[1]), ...args].join(' ');
}

function publish(results: Results): void {
  writeChart(CHART, results);
  writeReport(DOC, results);
}

async function main(): Promise<void> {
  // --from-results rewrites the figures and the chart from the last run's results, measuring
  // nothing: for when only the rendering changed.
  if (process.argv.includes('--from-results')) {
    publish(loadResults());
    log(`rewrote ${path.relative(REPO, DOC)} and ${path.relative(REPO, CHART)} from ${path.relative(REPO, RESULTS_FILE)}`);
    return;
  }
  const settings = settingsFromArguments();
  const started = Date.now();
  const cheap = await measureCheapRequests(settings);
  const streaming = await measureStreaming(settings);
  const scale = await measureScale(settings);
  const results: Results = {
    date: new Date().toISOString().slice(0, 10),
    machine: machine(),
    openFilesLimit: openFilesLimit(),
    command: commandLine(),
    durationSeconds: (Date.now() - started) / 1000,
    settings,
    cheap,
    streaming,
    scale,
  };
  saveResults(results);
  publish(results);
  log(`wrote ${path.relative(REPO, DOC)} and ${path.relative(REPO, CHART)} in ${Math.round(results.durationSeconds)} s`);
}

process.on('exit', killAllChildren);
process.on('SIGINT', () => process.exit(130));
process.on('SIGTERM', () => process.exit(143));

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
