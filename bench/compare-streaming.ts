// Before/after of the token path: this checkout's server (A) against another checkout's (B, e.g.
// a worktree of an earlier commit, built), run side by side and measured alternately, A B A B,
// with the ratio A/B per pair, so a machine that drifts moves both sides alike. The same load
// client (this checkout's bench/load/stream-client) drives both.
// - throughput: tokens/s of one streaming rkllm_run on sim:instant to one client, per transport;
// - latency: per-token added latency (receipt minus the runtime's callback, --enable-test-hooks)
//   and added time to first token on sim:rk3588-qwen2.5-1.5b, per transport.
// Servers run on vCPU 0, the client on vCPU 1.
// Usage: node dist/bench/compare-streaming.js --baseline DIR [--rounds 5] [--prompt "count to 30000"]
//          [--latency-prompt "count to 20"] [--latency-runs 3] [--transports tcp,ws,http]

import * as path from 'path';
import { argument } from './arguments';
import { CLIENT_CPU, DIST_BENCH, SERVER_CPU, machine, killAllChildren, runClient, startOurServer, stop, type RunningServer } from './server/harness';

type Side = 'A' | 'B';
type StreamTransport = 'tcp' | 'ws' | 'http';

const baselineRoot = path.resolve(argument('baseline'));
const rounds = Number(argument('rounds', '5'));
const prompt = argument('prompt', 'count to 30000');
const latencyPrompt = argument('latency-prompt', 'count to 20');
const latencyRuns = argument('latency-runs', '3');
const transports = argument('transports', 'tcp,ws,http').split(',') as StreamTransport[];
const CLIENT = path.join(DIST_BENCH, 'load', 'stream-client.js');
const BINS: Record<Side, string> = { A: path.resolve(DIST_BENCH, '..', '..', 'bin', 'rkllm-serve'), B: path.join(baselineRoot, 'bin', 'rkllm-serve') };
const RUN_BOUND_MS = 120_000;
/** What waits unread is bounded generously: sim:instant produces faster than a client reads. */
const THROUGHPUT_ARGS = ['--max-queue', '64', '--max-buffered-bytes', String(512 * 1024 * 1024)];
const LATENCY_ARGS = ['--model', 'sim:rk3588-qwen2.5-1.5b', '--enable-test-hooks'];

interface Throughput {
  tokensPerSecond: number;
}

interface Latency {
  medianMs: number;
  p99Ms: number;
  ttftAddedMedianMs: number;
  ttftAddedMaxMs: number;
}

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length === 0 ? NaN : sorted[Math.floor((sorted.length - 1) / 2)];
};
const fixed = (value: number, digits: number): string => (Number.isFinite(value) ? value.toFixed(digits) : '–');

async function withBoth<T>(extraArgs: string[], body: (servers: Record<Side, RunningServer>) => Promise<T>): Promise<T> {
  const servers: Partial<Record<Side, RunningServer>> = {};
  try {
    for (const side of ['A', 'B'] as const) servers[side] = await startOurServer(['tcp', 'ws', 'http'], extraArgs, SERVER_CPU, BINS[side]);
    return await body(servers as Record<Side, RunningServer>);
  } finally {
    for (const server of Object.values(servers)) if (server) await stop(server);
  }
}

function clientArgs(server: RunningServer, transport: StreamTransport, rest: string[]): string[] {
  return [CLIENT, '--transport', transport, '--port', String(server.ports[transport]), ...rest];
}

/** Each round runs both sides, the first side alternating, and pairs their figures. */
async function alternating<T>(measure: (side: Side) => Promise<T>): Promise<Array<Record<Side, T>>> {
  const pairs: Array<Record<Side, T>> = [];
  for (let round = 0; round < rounds; round++) {
    const order: Side[] = round % 2 === 0 ? ['A', 'B'] : ['B', 'A'];
    const pair: Partial<Record<Side, T>> = {};
    for (const side of order) pair[side] = await measure(side);
    pairs.push(pair as Record<Side, T>);
  }
  return pairs;
}

async function main(): Promise<void> {
  const lines: string[] = [];
  const out = (line: string): void => {
    lines.push(line);
    process.stderr.write(`${line}\n`);
  };
  out(`${machine()}; A = this checkout, B = ${baselineRoot}; ${rounds} rounds, A and B alternating`);
  out('');
  out(`Throughput: one client, \`${prompt}\` on sim:instant (tokens/s; ratio A/B per pair)`);
  out('');
  out('| transport | A median | B median | ratio A/B median | ratio min | ratio max |');
  out('|---|---:|---:|---:|---:|---:|');
  await withBoth(THROUGHPUT_ARGS, async (servers) => {
    for (const transport of transports) {
      const run = (side: Side): Promise<Throughput> =>
        runClient<Throughput>(clientArgs(servers[side], transport, ['--mode', 'throughput', '--handle', 'bench', '--prompt', prompt]), RUN_BOUND_MS, CLIENT_CPU);
      // A warm-up per side: JIT, and the model under --handle loaded.
      await run('A');
      await run('B');
      const pairs = await alternating(run);
      const ratios = pairs.map((pair) => pair.A.tokensPerSecond / pair.B.tokensPerSecond);
      out(
        `| ${transport} | ${Math.round(median(pairs.map((pair) => pair.A.tokensPerSecond)))} | ${Math.round(median(pairs.map((pair) => pair.B.tokensPerSecond)))} | ` +
          `${fixed(median(ratios), 2)} | ${fixed(Math.min(...ratios), 2)} | ${fixed(Math.max(...ratios), 2)} |`,
      );
    }
  });
  out('');
  out(`Added latency on sim:rk3588-qwen2.5-1.5b, \`${latencyPrompt}\`, ${latencyRuns} runs per measurement (ms; medians over the rounds)`);
  out('');
  out('| transport | A per-token median | B per-token median | A per-token p99 | B per-token p99 | A added TTFT median | B added TTFT median |');
  out('|---|---:|---:|---:|---:|---:|---:|');
  await withBoth(LATENCY_ARGS, async (servers) => {
    for (const transport of transports) {
      const run = (side: Side): Promise<Latency> =>
        runClient<Latency>(clientArgs(servers[side], transport, ['--mode', 'latency', '--prompt', latencyPrompt, '--runs', latencyRuns]), RUN_BOUND_MS, CLIENT_CPU);
      const pairs = await alternating(run);
      const of = (side: Side, key: keyof Latency): string => fixed(median(pairs.map((pair) => pair[side][key])), 3);
      out(
        `| ${transport} | ${of('A', 'medianMs')} | ${of('B', 'medianMs')} | ${of('A', 'p99Ms')} | ${of('B', 'p99Ms')} | ${of('A', 'ttftAddedMedianMs')} | ${of('B', 'ttftAddedMedianMs')} |`,
      );
    }
  });
  process.stdout.write(`${lines.join('\n')}\n`);
}

main().catch((error: unknown) => {
  console.error(error);
  killAllChildren();
  process.exit(1);
});
