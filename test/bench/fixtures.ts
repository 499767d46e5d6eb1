// Results of a small made-up run of the server bench, for the tests of its report and chart.

import type { Results } from '../../bench/server/results';
import type { ThroughputRow } from '../../bench/server/suites/cheap-requests';

function cheapRow(transport: ThroughputRow['transport'], clients: number, ours: number, baseline: number): ThroughputRow {
  return {
    transport,
    clients,
    ours: { requestsPerSecond: ours, medianMs: 0.1, p99Ms: 0.5, ...(transport === 'udp' ? { lost: 3 } : {}) },
    baseline: { requestsPerSecond: baseline, medianMs: 0.1, p99Ms: 0.4, ...(transport === 'udp' ? { lost: 2 } : {}) },
    ratio: ours / baseline,
  };
}

export function sampleResults(overrides: Partial<Results> = {}): Results {
  return {
    date: '2030-01-02',
    machine: '2 vCPUs (Test CPU), 4 GiB, Node v20.0.0, Linux 6.0 x64',
    openFilesLimit: 20000,
    command: 'npm run bench:server',
    durationSeconds: 12.4,
    settings: {
      quick: false,
      secondsPerCell: 3,
      rounds: 2,
      clientCounts: [1, 16],
      streamWarmUpPrompt: 'count to 20',
      streamCases: [
        { clients: 1, prompt: 'count to 500' },
        { clients: 8, prompt: 'count to 20' },
      ],
      latencyPrompt: 'count to 5',
      latencyRuns: 2,
      scaleSteps: [1000, 2000, 3000],
    },
    cheap: {
      replyBytes: 453,
      rows: [
        cheapRow('stdio', 1, 9000, 10000),
        cheapRow('stdio', 16, 50000, 100000),
        cheapRow('tcp', 1, 8000, 10000),
        cheapRow('tcp', 16, 80000, 80000),
        cheapRow('udp', 1, 7000, 10000),
        cheapRow('udp', 16, 60000, 40000),
        cheapRow('http', 1, 2000, 4000),
        cheapRow('http', 16, 10000, 20000),
        cheapRow('ws', 1, 9000, 9000),
        cheapRow('ws', 16, 45000, 50000),
      ],
    },
    streaming: {
      throughput: [
        { transport: 'tcp', clients: 1, tokens: 1490, seconds: 0.01, tokensPerSecond: 149000, serverCpuShare: 0.75 },
        { transport: 'tcp', clients: 8, tokens: 400, seconds: 0.002, tokensPerSecond: 200000, serverCpuShare: 0.8 },
        { transport: 'ws', clients: 1, tokens: 1490, seconds: 0.005, tokensPerSecond: 298000, serverCpuShare: 0.9 },
        { transport: 'ws', clients: 8, tokens: 400, seconds: 0.002, tokensPerSecond: 200000, serverCpuShare: 0.8 },
      ],
      latency: [
        { transport: 'tcp', tokens: 14, medianMs: 0.2, p99Ms: 0.9, maxMs: 1.1, runs: 2, ttftAddedMedianMs: 0.5, ttftAddedMaxMs: 2.5 },
        { transport: 'ws', tokens: 14, medianMs: 0.3, p99Ms: 1.2, maxMs: 1.4, runs: 2, ttftAddedMedianMs: 0.6, ttftAddedMaxMs: 1.5 },
      ],
    },
    scale: {
      rows: [
        { transport: 'tcp', idleKiB: 65536, steps: [[1000, 70656], [2000, 75776], [3000, 80896]], mostUnderLimit: 3000, endedBy: "the search's cap (3,000)", kibPerConnection: 5.12 },
        { transport: 'udp', idleKiB: 65536, steps: [[1000, 90000], [2000, 110000]], mostUnderLimit: 1000, endedBy: 'the 100 MiB limit', kibPerConnection: 24.5 },
        { transport: 'http', idleKiB: 65536, steps: [[1000, 70000]], mostUnderLimit: 1000, endedBy: 'a failure: refused | reset', kibPerConnection: 4.5 },
        { transport: 'ws', idleKiB: 64512, steps: [[1000, 73728], [2000, 110000]], mostUnderLimit: 1000, endedBy: 'the 100 MiB limit', kibPerConnection: 9.2 },
      ],
      bareIdleKiB: 51200,
    },
    ...overrides,
  };
}
