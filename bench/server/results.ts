// The figures of one run of the server bench with what is needed to describe it, as saved to
// dist/bench/server-results.json and rendered into docs/benchmarks.md and the chart.

import * as fs from 'fs';
import * as path from 'path';
import { DIST_BENCH } from './harness';
import type { Settings } from './settings';
import type { CheapRequestFigures } from './suites/cheap-requests';
import type { ScaleFigures } from './suites/scale';
import type { StreamingFigures } from './suites/streaming';

export interface Results {
  /** YYYY-MM-DD, UTC. */
  date: string;
  machine: string;
  /** The soft limit on open files, which bounds the scale search; null when unlimited or unknown. */
  openFilesLimit: number | null;
  /** The command line that made the run, as a reader would type it. */
  command: string;
  durationSeconds: number;
  settings: Settings;
  cheap: CheapRequestFigures;
  streaming: StreamingFigures;
  scale: ScaleFigures;
}

export const RESULTS_FILE = path.join(DIST_BENCH, 'server-results.json');

export function saveResults(results: Results): void {
  fs.writeFileSync(RESULTS_FILE, JSON.stringify(results, null, 2) + '\n');
}

export function loadResults(file = RESULTS_FILE): Results {
  let results: Partial<Results>;
  try {
    results = JSON.parse(fs.readFileSync(file, 'utf8')) as Partial<Results>;
  } catch (error) {
    throw new Error(`cannot read the results of a run from ${file}: ${(error as Error).message}`);
  }
  const missing = (['date', 'machine', 'command', 'settings', 'cheap', 'streaming', 'scale'] as const).filter((key) => results[key] === undefined);
  if (missing.length > 0) throw new Error(`${file} is not the results of this bench (no ${missing.join(', ')})`);
  return results as Results;
}
