// Suite: cheap requests (rkllm_createDefaultParam, closed loop) against a bare baseline server of
// the same transport, per transport and client count, the server and the client each pinned to a
// vCPU. The load clients are bench/load/rpc-load.ts, and autocannon for HTTP.

import * as net from 'net';
import * as path from 'path';
import {
  alternate,
  baselineArgs,
  CLIENT_CPU,
  DIST_BENCH,
  log,
  nodeCommand,
  ourServerArgs,
  ratio,
  REPO,
  type RunningServer,
  runClient,
  SERVER_CPU,
  startBaseline,
  startOurServer,
  stop,
  TRANSPORTS,
  type TransportName,
} from '../harness';
import type { Settings } from '../settings';

export interface LoadFigure {
  requestsPerSecond: number;
  medianMs: number;
  p99Ms: number;
  /** UDP only: datagrams not answered in time (resent, not counted). */
  lost?: number;
}

export interface ThroughputRow {
  transport: TransportName;
  clients: number;
  ours: LoadFigure;
  baseline: LoadFigure;
  ratio: number;
}

export interface CheapRequestFigures {
  /** The size of our reply to rkllm_createDefaultParam with id 1: the baseline's reply size. */
  replyBytes: number;
  rows: ThroughputRow[];
}

const REQUEST = '{"jsonrpc":"2.0","id":1,"method":"rkllm_createDefaultParam"}';
/** A load client's bound beyond its own measuring time: start-up, warm-up, the server's spawn. */
const CLIENT_SLACK_MS = 30_000;

interface AutocannonResult {
  requests: { total: number };
  latency: { p50: number; p99: number };
  duration: number;
  non2xx: number;
  errors: number;
}

async function realReplyBytes(): Promise<number> {
  const probe = await startOurServer(['tcp']);
  try {
    return await new Promise<number>((resolve, reject) => {
      const socket = net.connect({ host: '127.0.0.1', port: probe.ports.tcp! }, () => socket.write(`${REQUEST}\n`));
      socket.setTimeout(10_000, () => socket.destroy(new Error('no reply to rkllm_createDefaultParam within 10 s')));
      let received = '';
      socket.setEncoding('utf8');
      socket.on('data', (data: string) => {
        received += data;
        const newline = received.indexOf('\n');
        if (newline !== -1) {
          socket.destroy();
          resolve(Buffer.byteLength(received.slice(0, newline)));
        }
      });
      socket.on('error', reject);
    });
  } finally {
    await stop(probe);
  }
}

async function httpLoad(port: number, clients: number, seconds: number): Promise<LoadFigure> {
  const autocannon = path.join(REPO, 'node_modules', 'autocannon', 'autocannon.js');
  const result = await runClient<AutocannonResult>(
    [autocannon, '-c', String(clients), '-d', String(seconds), '-m', 'POST', '-H', 'content-type=application/json', '-b', REQUEST, '-j', `http://127.0.0.1:${port}/`],
    seconds * 1000 + CLIENT_SLACK_MS,
    CLIENT_CPU,
  );
  if (result.non2xx > 0 || result.errors > 0) throw new Error(`autocannon: ${result.non2xx} non-2xx, ${result.errors} errors`);
  return { requestsPerSecond: result.requests.total / result.duration, medianMs: result.latency.p50, p99Ms: result.latency.p99 };
}

function socketLoad(transport: TransportName, clients: number, seconds: number, target: { port: number } | { command: string[] }): Promise<LoadFigure> {
  const args = [path.join(DIST_BENCH, 'load', 'rpc-load.js'), '--transport', transport, '--clients', String(clients), '--seconds', String(seconds)];
  if ('command' in target) args.push('--command', JSON.stringify(target.command));
  else args.push('--port', String(target.port));
  return runClient<LoadFigure>(args, seconds * 1000 + CLIENT_SLACK_MS, CLIENT_CPU);
}

export async function measureCheapRequests(settings: Settings): Promise<CheapRequestFigures> {
  const replyBytes = await realReplyBytes();
  log(`our reply to rkllm_createDefaultParam (id 1) is ${replyBytes} bytes`);
  const seconds = settings.secondsPerCell;
  // Over stdio the load client spawns the server itself: these are the command lines it runs.
  const stdioCommand = {
    ours: nodeCommand(SERVER_CPU, ourServerArgs(['stdio'], ['--log-level', 'warn'])),
    baseline: nodeCommand(SERVER_CPU, baselineArgs('stdio', replyBytes)),
  };
  const rows: ThroughputRow[] = [];
  for (const transport of TRANSPORTS) {
    // A server process per transport and kind, so each measurement has one server on the wire.
    let ours: RunningServer | undefined;
    let baseline: RunningServer | undefined;
    try {
      if (transport !== 'stdio') {
        // The throughput of the transport itself: one UDP peer's byte budget would cap it.
        ours = await startOurServer([transport], transport === 'udp' ? ['--udp-reply-bytes-per-second', '0'] : [], SERVER_CPU);
        baseline = await startBaseline(transport, replyBytes, SERVER_CPU);
      }
      for (const clients of settings.clientCounts) {
        const load = (server: RunningServer | undefined, command: string[]): Promise<LoadFigure> =>
          transport === 'http'
            ? httpLoad(server!.ports.http!, clients, seconds)
            : socketLoad(transport, clients, seconds, server ? { port: server.ports[transport]! } : { command });
        const [oursFigure, baselineFigure] = await alternate(
          settings.rounds,
          () => load(ours, stdioCommand.ours),
          () => load(baseline, stdioCommand.baseline),
          (figure) => figure.requestsPerSecond,
        );
        const row = { transport, clients, ours: oursFigure, baseline: baselineFigure, ratio: ratio(oursFigure.requestsPerSecond, baselineFigure.requestsPerSecond) };
        log(`${transport} x${clients}: ours ${Math.round(row.ours.requestsPerSecond)}/s, baseline ${Math.round(row.baseline.requestsPerSecond)}/s, ratio ${row.ratio.toFixed(2)}`);
        rows.push(row);
      }
    } finally {
      if (ours) await stop(ours);
      if (baseline) await stop(baseline);
    }
  }
  return { replyBytes, rows };
}
