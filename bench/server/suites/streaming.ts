// Suite: streaming over TCP, WebSocket and HTTP (SSE). Throughput: tokens per second delivered from a
// sim:instant model to one client and to many at once, with the server's CPU use over each run.
// Latency: per-token delay and added time-to-first-token on the RK3588 profile, from the
// callback_us stamps of --enable-test-hooks. The load client is bench/load/stream-client.ts.

import * as path from 'path';
import { cpuSeconds, DIST_BENCH, log, runClient, startOurServer, type TransportName, withServer } from '../harness';
import type { Settings } from '../settings';

export interface StreamThroughputRow {
  transport: TransportName;
  clients: number;
  tokens: number;
  seconds: number;
  tokensPerSecond: number;
  /** Server CPU time (user + system) over the run's wall time: 1.0 is one vCPU busy throughout. */
  serverCpuShare: number;
}

export interface StreamLatencyRow {
  transport: TransportName;
  tokens: number;
  medianMs: number;
  p99Ms: number;
  maxMs: number;
  runs: number;
  ttftAddedMedianMs: number;
  ttftAddedMaxMs: number;
}

export interface StreamingFigures {
  throughput: StreamThroughputRow[];
  latency: StreamLatencyRow[];
}

const STREAM_TRANSPORTS = ['tcp', 'ws', 'http'] as const;
/** The model the throughput clients load with rkllm_init (see stream-client's --handle). */
const THROUGHPUT_HANDLE = 'bench';
export const PACED_MODEL = 'sim:rk3588-qwen2.5-1.5b';
const RUN_BOUND_MS = 120_000;

const client = (): string => path.join(DIST_BENCH, 'load', 'stream-client.js');

async function measureThroughput(settings: Settings): Promise<StreamThroughputRow[]> {
  const rows: StreamThroughputRow[] = [];
  // The runs of many clients at once queue on the one model: the queue must hold them all.
  const queue = String(Math.max(128, ...settings.streamCases.map((entry) => entry.clients * 2)));
  await withServer(
    // sim:instant produces faster than any client reads: a generous bound on what waits unread
    // keeps the server from cutting the reader off (the bound itself is tested, not measured, here).
    () => startOurServer([...STREAM_TRANSPORTS], ['--max-queue', queue, '--max-buffered-bytes', String(512 * 1024 * 1024)]),
    async (server) => {
      const pid = server.child.pid!;
      for (const transport of STREAM_TRANSPORTS) {
        const common = [client(), '--transport', transport, '--port', String(server.ports[transport]), '--mode', 'throughput', '--handle', THROUGHPUT_HANDLE];
        await runClient([...common, '--prompt', settings.streamWarmUpPrompt], RUN_BOUND_MS);
        for (const { clients, prompt } of settings.streamCases) {
          const cpuBefore = cpuSeconds(pid);
          const row = await runClient<Omit<StreamThroughputRow, 'serverCpuShare'>>([...common, '--prompt', prompt, '--clients', String(clients)], RUN_BOUND_MS);
          // The client's own start-up and exit fall outside row.seconds; the share is a slight overestimate.
          const serverCpuShare = (cpuSeconds(pid) - cpuBefore) / row.seconds;
          log(`stream ${transport} x${clients}: ${Math.round(row.tokensPerSecond)} tokens/s, server CPU ${serverCpuShare.toFixed(2)}`);
          rows.push({ ...row, transport, serverCpuShare });
        }
      }
    },
  );
  return rows;
}

async function measureLatency(settings: Settings): Promise<StreamLatencyRow[]> {
  const rows: StreamLatencyRow[] = [];
  await withServer(
    () => startOurServer([...STREAM_TRANSPORTS], ['--model', PACED_MODEL, '--enable-test-hooks']),
    async (server) => {
      for (const transport of STREAM_TRANSPORTS) {
        const row = await runClient<StreamLatencyRow>(
          [client(), '--transport', transport, '--port', String(server.ports[transport]), '--mode', 'latency', '--prompt', settings.latencyPrompt, '--runs', String(settings.latencyRuns)],
          RUN_BOUND_MS,
        );
        log(`latency ${transport}: median ${row.medianMs.toFixed(3)} ms, p99 ${row.p99Ms.toFixed(3)} ms, added TTFT ${row.ttftAddedMedianMs.toFixed(3)} ms`);
        rows.push({ ...row, transport });
      }
    },
  );
  return rows;
}

export async function measureStreaming(settings: Settings): Promise<StreamingFigures> {
  return { throughput: await measureThroughput(settings), latency: await measureLatency(settings) };
}
