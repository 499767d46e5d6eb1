// What the server bench measures and for how long: the full settings, or with --quick a short
// run that goes through every suite and every output to check that the bench works, in about two
// minutes, with figures too rough to compare. The settings go into the results, so that the report
// describes the run that was made.

import { argument } from '../arguments';

export interface StreamCase {
  clients: number;
  prompt: string;
}

export interface Settings {
  quick: boolean;
  /** Cheap requests: the seconds each load client measures one round of a cell for. */
  secondsPerCell: number;
  /** Cheap requests: rounds per cell, alternating ours and the baseline. */
  rounds: number;
  clientCounts: number[];
  /** Streaming throughput: one warm-up run per transport, then each case. */
  streamWarmUpPrompt: string;
  streamCases: StreamCase[];
  /** Streaming latency on the RK3588 profile: this prompt, this many runs on one connection. */
  latencyPrompt: string;
  latencyRuns: number;
  /** Scale: the open idle connections after each step of the ramp. */
  scaleSteps: number[];
}

const FULL: Settings = {
  quick: false,
  secondsPerCell: 3,
  rounds: 2,
  clientCounts: [1, 16, 256],
  streamWarmUpPrompt: 'count to 2000',
  streamCases: [
    { clients: 1, prompt: 'count to 50000' },
    { clients: 64, prompt: 'count to 2000' },
  ],
  latencyPrompt: 'count to 20',
  latencyRuns: 3,
  // Steps of 1,000 up to 12,000: the answer is known to the nearest 1,000.
  scaleSteps: Array.from({ length: 12 }, (_, index) => (index + 1) * 1000),
};

const QUICK: Settings = {
  quick: true,
  secondsPerCell: 1,
  rounds: 1,
  clientCounts: FULL.clientCounts,
  streamWarmUpPrompt: 'count to 200',
  streamCases: [
    { clients: 1, prompt: 'count to 5000' },
    { clients: 64, prompt: 'count to 200' },
  ],
  latencyPrompt: 'count to 3',
  latencyRuns: 1,
  scaleSteps: [500, 1000],
};

function positive(name: string, text: string, integer: boolean): number {
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0 || (integer && !Number.isInteger(value))) {
    throw new Error(`--${name} must be a positive ${integer ? 'integer' : 'number'}, not ${JSON.stringify(text)}`);
  }
  return value;
}

/** The settings the command line asks for: --quick, then --seconds and --rounds over either. */
export function settingsFromArguments(): Settings {
  const base = process.argv.includes('--quick') ? QUICK : FULL;
  return {
    ...base,
    secondsPerCell: positive('seconds', argument('seconds', String(base.secondsPerCell)), false),
    rounds: positive('rounds', argument('rounds', String(base.rounds)), true),
  };
}
