// Benchmark of the whole server, per transport, with the emulated runtime: cheap-request
// throughput against a bare baseline server of the same transport, streaming throughput and
// per-token latency, and how many idle connections fit in 100 MiB. The load clients are separate
// processes (bench/load/, autocannon for HTTP) on loopback. Writes the "Whole server" section of
// docs/benchmarks.md (between its markers), docs/benchmarks-chart.png and
// dist/bench/server-results.json. Usage: npm run bench:server [-- --seconds S --rounds R]
// (or node dist/bench/server-bench.js --from-results to re-render from the saved figures).

import { type ChildProcess, spawn } from 'child_process';
import * as fs from 'fs';
import * as net from 'net';
import * as os from 'os';
import * as path from 'path';
import { renderBarChart } from './png-chart';
import { argument } from './arguments';

const REPO = path.resolve(__dirname, '..', '..');
const BIN = path.join(REPO, 'bin', 'rkllm-serve');
const DIST_BENCH = __dirname;
const DOC = path.join(REPO, 'docs', 'benchmarks.md');
const CHART = path.join(REPO, 'docs', 'benchmarks-chart.png');
const START_MARKER = '<!-- bench:server start (written by npm run bench:server; edits here are overwritten) -->';
const END_MARKER = '<!-- bench:server end -->';

const secondsPerCell = Number(argument('seconds', '3'));
const TRANSPORTS = ['stdio', 'tcp', 'udp', 'http', 'ws'] as const;
type TransportName = (typeof TRANSPORTS)[number];
const CLIENT_COUNTS = [1, 16, 256];
const MEMORY_LIMIT_KIB = 100 * 1024;
/** Steps of 1,000 up to 12,000: the answer is known to the nearest 1,000. */
const SCALE_STEPS = Array.from({ length: 12 }, (_, index) => (index + 1) * 1000);
/** The server's name for each transport in its listening lines. */
const SERVER_NAME: Record<TransportName, string> = { stdio: 'stdio', tcp: 'tcp', udp: 'udp', http: 'http', ws: 'websocket' };
const DISABLE_FLAG: Record<TransportName, string> = {
  stdio: '--disable-stdio',
  tcp: '--disable-tcp',
  udp: '--disable-udp',
  http: '--disable-http',
  ws: '--disable-ws',
};
const PORT_FLAGS = ['--tcp-port', '0', '--udp-port', '0', '--http-port', '0', '--ws-port', '0'];

const children = new Set<ChildProcess>();

// In the cheap-request runs the server is pinned to vCPU 0 and its load client to vCPU 1. Unpinned,
// a one-client ping-pong ran at either about 9,000 or about 23,000 requests/s depending on whether
// the scheduler happened to put both processes on one vCPU (no cross-vCPU wake-up), which swamped
// the difference between the servers. Pinned, every cell pays the same cross-vCPU hand-off.
const SERVER_CPU = 0;
const CLIENT_CPU = 1;
const canPin = os.cpus().length >= 2 && fs.existsSync('/usr/bin/taskset');

/** The command line, run on one vCPU when `cpu` is given (taskset execs it: the pid stays). */
function pinned(cpu: number | undefined, args: string[]): [string, string[]] {
  if (cpu === undefined || !canPin) return [process.execPath, args];
  return ['/usr/bin/taskset', ['-c', String(cpu), process.execPath, ...args]];
}

function track(child: ChildProcess): ChildProcess {
  children.add(child);
  child.on('exit', () => children.delete(child));
  return child;
}

function log(line: string): void {
  process.stderr.write(`[bench:server ${new Date().toISOString().slice(11, 19)}] ${line}\n`);
}

/** Bounded wait for a condition on a child's output lines. */
function waitForLines(stream: NodeJS.ReadableStream, what: string, timeoutMs: number, accept: (line: string) => boolean): Promise<void> {
  return new Promise((resolve, reject) => {
    let pending = '';
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), timeoutMs);
    const onData = (data: Buffer): void => {
      pending += data.toString('utf8');
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) {
        if (accept(line)) {
          clearTimeout(timer);
          stream.off('data', onData);
          resolve();
          return;
        }
      }
    };
    stream.on('data', onData);
  });
}

interface RunningServer {
  child: ChildProcess;
  ports: Partial<Record<TransportName, number>>;
}

/** Starts rkllm-serve with the given transports on free ports; resolves once each is listening. */
async function startOurServer(transports: TransportName[], extraArgs: string[] = [], cpu?: number): Promise<RunningServer> {
  const disabled = TRANSPORTS.filter((name) => !transports.includes(name)).map((name) => DISABLE_FLAG[name]);
  const child = track(
    spawn(...pinned(cpu, [BIN, '--runtime', 'sim', ...PORT_FLAGS, ...disabled, ...extraArgs]), {
      stdio: ['ignore', 'ignore', 'pipe'],
    }),
  );
  const ports: Partial<Record<TransportName, number>> = {};
  const wanted = transports.filter((name) => name !== 'stdio');
  await waitForLines(child.stderr!, `listening lines of ${wanted.join(', ')}`, 20_000, (line) => {
    try {
      const record = JSON.parse(line) as { transport?: string; port?: number; msg?: string };
      const name = wanted.find((candidate) => SERVER_NAME[candidate] === record.transport);
      if (name && typeof record.port === 'number' && /listening/.test(record.msg ?? '')) ports[name] = record.port;
    } catch {
      // not a log line
    }
    return wanted.every((name) => ports[name] !== undefined);
  });
  // Keep draining stderr so the server never blocks on a full pipe.
  child.stderr!.resume();
  return { child, ports };
}

async function startBaseline(transport: TransportName, replyBytes: number, cpu?: number): Promise<RunningServer> {
  const child = track(
    spawn(...pinned(cpu, [path.join(DIST_BENCH, 'baselines', 'bare-server.js'), '--transport', transport, '--reply-bytes', String(replyBytes)]), {
      stdio: ['ignore', 'pipe', 'inherit'],
    }),
  );
  let port = 0;
  await waitForLines(child.stdout!, `the ${transport} baseline's port`, 10_000, (line) => {
    port = (JSON.parse(line) as { port: number }).port;
    return true;
  });
  return { child, ports: { [transport]: port } };
}

async function stop(server: RunningServer): Promise<void> {
  if (server.child.exitCode !== null || server.child.signalCode !== null) return;
  const exited = new Promise((resolve) => server.child.once('exit', resolve));
  server.child.kill('SIGTERM');
  const timer = setTimeout(() => server.child.kill('SIGKILL'), 3000);
  await exited;
  clearTimeout(timer);
}

/** Runs a load client to its end (bounded) and returns its last stdout line parsed. */
function runClient<T>(args: string[], timeoutMs: number, cpu?: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const child = track(spawn(...pinned(cpu, args), { stdio: ['ignore', 'pipe', 'inherit'] }));
    let output = '';
    child.stdout!.on('data', (data: Buffer) => (output += data.toString('utf8')));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      const last = output.trim().split('\n').pop() ?? '';
      if (code !== 0) reject(new Error(`${path.basename(args[0])} exited with ${code}: ${output.slice(0, 300)}`));
      else resolve(JSON.parse(last) as T);
    });
  });
}

function residentKiB(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const match = /VmRSS:\s+(\d+) kB/.exec(status);
  if (!match) throw new Error(`no VmRSS for ${pid}`);
  return Number(match[1]);
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** The length of our reply to rkllm_createDefaultParam with id 1: the baseline's reply size. */
async function realReplyBytes(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port }, () => socket.write('{"jsonrpc":"2.0","id":1,"method":"rkllm_createDefaultParam"}\n'));
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
}

// ---------------------------------------------------------------------------------------------
// Cheap requests

interface LoadFigure {
  requestsPerSecond: number;
  medianMs: number;
  p99Ms: number;
  lost?: number;
}

interface ThroughputRow {
  transport: TransportName;
  clients: number;
  ours: LoadFigure;
  baseline: LoadFigure;
  ratio: number;
}

interface AutocannonResult {
  requests: { total: number };
  latency: { p50: number; p99: number };
  duration: number;
  non2xx: number;
  errors: number;
}

async function httpLoad(port: number, clients: number): Promise<LoadFigure> {
  const autocannon = path.join(REPO, 'node_modules', 'autocannon', 'autocannon.js');
  const body = '{"jsonrpc":"2.0","id":1,"method":"rkllm_createDefaultParam"}';
  const result = await runClient<AutocannonResult>(
    [autocannon, '-c', String(clients), '-d', String(secondsPerCell), '-m', 'POST', '-H', 'content-type=application/json', '-b', body, '-j', `http://127.0.0.1:${port}/`],
    (secondsPerCell + 30) * 1000,
    CLIENT_CPU,
  );
  if (result.non2xx > 0 || result.errors > 0) throw new Error(`autocannon: ${result.non2xx} non-2xx, ${result.errors} errors`);
  return { requestsPerSecond: result.requests.total / result.duration, medianMs: result.latency.p50, p99Ms: result.latency.p99 };
}

function socketLoad(transport: TransportName, clients: number, target: { port?: number; command?: string[] }): Promise<LoadFigure> {
  const args = [path.join(DIST_BENCH, 'load', 'rpc-load.js'), '--transport', transport, '--clients', String(clients), '--seconds', String(secondsPerCell)];
  if (target.command) args.push('--command', JSON.stringify(target.command));
  else args.push('--port', String(target.port));
  return runClient<LoadFigure>(args, (secondsPerCell + 30) * 1000, CLIENT_CPU);
}

const ROUNDS = Number(argument('rounds', '2'));

function best(current: LoadFigure | undefined, next: LoadFigure): LoadFigure {
  return current === undefined || next.requestsPerSecond > current.requestsPerSecond ? next : current;
}

async function measureCheapRequests(replyBytes: number): Promise<ThroughputRow[]> {
  const rows: ThroughputRow[] = [];
  // Over stdio the load client spawns the server: these are the command lines it runs.
  const commandLine = (args: string[]): string[] => {
    const [file, rest] = pinned(SERVER_CPU, args);
    return [file, ...rest];
  };
  const ourStdio = commandLine([BIN, '--runtime', 'sim', '--log-level', 'warn', ...TRANSPORTS.filter((name) => name !== 'stdio').map((name) => DISABLE_FLAG[name])]);
  const baselineStdio = commandLine([path.join(DIST_BENCH, 'baselines', 'bare-server.js'), '--transport', 'stdio', '--reply-bytes', String(replyBytes)]);
  for (const transport of TRANSPORTS) {
    // A server process per transport and kind, so each measurement has one server on the wire.
    const ours = transport === 'stdio' ? undefined : await startOurServer([transport], [], SERVER_CPU);
    const baseline = transport === 'stdio' ? undefined : await startBaseline(transport, replyBytes, SERVER_CPU);
    try {
      for (const clients of CLIENT_COUNTS) {
        const load = (server: RunningServer | undefined, command: string[]): Promise<LoadFigure> =>
          transport === 'http'
            ? httpLoad(server!.ports.http!, clients)
            : socketLoad(transport, clients, server ? { port: server.ports[transport] } : { command });
        // Rounds alternate ours and the baseline, and each keeps its best round: other processes on
        // the shared VM take CPU at random moments, and the best round is the least disturbed one.
        let oursFigure: LoadFigure | undefined;
        let baselineFigure: LoadFigure | undefined;
        for (let round = 0; round < ROUNDS; round++) {
          oursFigure = best(oursFigure, await load(ours, ourStdio));
          baselineFigure = best(baselineFigure, await load(baseline, baselineStdio));
        }
        const row = { transport, clients, ours: oursFigure!, baseline: baselineFigure!, ratio: oursFigure!.requestsPerSecond / baselineFigure!.requestsPerSecond };
        log(`${transport} x${clients}: ours ${Math.round(row.ours.requestsPerSecond)}/s, baseline ${Math.round(row.baseline.requestsPerSecond)}/s, ratio ${row.ratio.toFixed(2)}`);
        rows.push(row);
      }
    } finally {
      if (ours) await stop(ours);
      if (baseline) await stop(baseline);
    }
  }
  return rows;
}

// ---------------------------------------------------------------------------------------------
// Streaming

interface StreamThroughputRow {
  transport: TransportName;
  clients: number;
  tokens: number;
  seconds: number;
  tokensPerSecond: number;
  /** Server CPU time (user + system) over the run's wall time: 1.0 is one vCPU busy throughout. */
  serverCpuShare: number;
}

/** user + system CPU seconds of a process so far (/proc/<pid>/stat fields 14 and 15, in ticks). */
function cpuSeconds(pid: number): number {
  const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  // After the ") " the fields start at field 3 (state), so utime (14) and stime (15) are at 11, 12.
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

interface StreamLatencyRow {
  transport: TransportName;
  tokens: number;
  medianMs: number;
  p99Ms: number;
  maxMs: number;
  runs: number;
  ttftAddedMedianMs: number;
  ttftAddedMaxMs: number;
}

const STREAM_THROUGHPUT_CASES = [
  { clients: 1, prompt: 'count to 50000' },
  { clients: 64, prompt: 'count to 2000' },
];
const LATENCY_PROMPT = 'count to 20';
const LATENCY_RUNS = 3;

async function measureStreaming(): Promise<{ throughput: StreamThroughputRow[]; latency: StreamLatencyRow[] }> {
  const client = path.join(DIST_BENCH, 'load', 'stream-client.js');
  const throughput: StreamThroughputRow[] = [];
  // 64 runs at once queue on the one model: the queue must hold them all.
  const instant = await startOurServer(['tcp', 'ws'], ['--max-queue', '128']);
  try {
    for (const transport of ['tcp', 'ws'] as const) {
      const port = String(instant.ports[transport]);
      await runClient([client, '--transport', transport, '--port', port, '--mode', 'throughput', '--prompt', 'count to 2000', '--handle', 'bench'], 60_000); // warm-up
      for (const { clients, prompt } of STREAM_THROUGHPUT_CASES) {
        const cpuBefore = cpuSeconds(instant.child.pid!);
        const row = await runClient<Omit<StreamThroughputRow, 'serverCpuShare'>>(
          [client, '--transport', transport, '--port', port, '--mode', 'throughput', '--prompt', prompt, '--clients', String(clients), '--handle', 'bench'],
          120_000,
        );
        // The client's own start-up and exit fall outside row.seconds; the share is a slight overestimate.
        const serverCpuShare = (cpuSeconds(instant.child.pid!) - cpuBefore) / row.seconds;
        log(`stream ${transport} x${clients}: ${Math.round(row.tokensPerSecond)} tokens/s, server CPU ${serverCpuShare.toFixed(2)}`);
        throughput.push({ ...row, transport, serverCpuShare });
      }
    }
  } finally {
    await stop(instant);
  }
  const latency: StreamLatencyRow[] = [];
  const paced = await startOurServer(['tcp', 'ws'], ['--model', 'sim:rk3588-qwen2.5-1.5b', '--enable-test-hooks']);
  try {
    for (const transport of ['tcp', 'ws'] as const) {
      const row = await runClient<StreamLatencyRow>(
        [client, '--transport', transport, '--port', String(paced.ports[transport]), '--mode', 'latency', '--prompt', LATENCY_PROMPT, '--runs', String(LATENCY_RUNS)],
        120_000,
      );
      log(`latency ${transport}: median ${row.medianMs.toFixed(3)} ms, p99 ${row.p99Ms.toFixed(3)} ms, added TTFT ${row.ttftAddedMedianMs.toFixed(3)} ms`);
      latency.push({ ...row, transport });
    }
  } finally {
    await stop(paced);
  }
  return { throughput, latency };
}

// ---------------------------------------------------------------------------------------------
// Scale

interface ScaleRow {
  transport: TransportName;
  idleKiB: number;
  /** [open connections, server RSS KiB] for each step reached. */
  steps: Array<[number, number]>;
  /** The most connections seen open with RSS under the limit. */
  mostUnderLimit: number;
  /** Why the ramp ended: the limit, the search's cap, or a failure. */
  endedBy: string;
  /** Extra RSS per connection over the last step under the limit. */
  kibPerConnection: number;
}

/** Idle RSS of the bare TCP baseline: what a Node process with a listening socket costs anyway. */
async function bareNodeKiB(): Promise<number> {
  const baseline = await startBaseline('tcp', 100);
  try {
    await sleep(500);
    return residentKiB(baseline.child.pid!);
  } finally {
    await stop(baseline);
  }
}

async function measureScale(): Promise<ScaleRow[]> {
  const rows: ScaleRow[] = [];
  for (const transport of ['tcp', 'udp', 'http', 'ws'] as const) {
    const server = await startOurServer([transport], ['--max-connections', '20000']);
    try {
      await sleep(500);
      const pid = server.child.pid!;
      const idleKiB = residentKiB(pid);
      const client = track(
        spawn(
          process.execPath,
          [path.join(DIST_BENCH, 'load', 'idle-connections.js'), '--transport', transport, '--port', String(server.ports[transport]), '--steps', SCALE_STEPS.join(',')],
          { stdio: ['pipe', 'pipe', 'inherit'] },
        ),
      );
      const steps: Array<[number, number]> = [];
      let endedBy = `the search's cap (${SCALE_STEPS[SCALE_STEPS.length - 1].toLocaleString('en-US')})`;
      let pending = '';
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`scale ${transport}: timed out`)), 120_000);
        client.stdout!.on('data', (data: Buffer) => {
          pending += data.toString('utf8');
          const lines = pending.split('\n');
          pending = lines.pop() ?? '';
          for (const line of lines) {
            const report = JSON.parse(line) as { open: number; failed?: string };
            // Settle, so the RSS includes what the server allocated for the last connections.
            setTimeout(() => {
              const kib = residentKiB(pid);
              steps.push([report.open, kib]);
              log(`scale ${transport}: ${report.open} open, RSS ${(kib / 1024).toFixed(1)} MiB${report.failed ? ` (${report.failed})` : ''}`);
              const last = report.open >= SCALE_STEPS[SCALE_STEPS.length - 1];
              if (report.failed) endedBy = `a failure: ${report.failed}`;
              else if (kib > MEMORY_LIMIT_KIB) endedBy = 'the 100 MiB limit';
              if (report.failed || kib > MEMORY_LIMIT_KIB || last) {
                clearTimeout(timer);
                client.stdin!.end();
                resolve();
              } else {
                client.stdin!.write('next\n');
              }
            }, 500);
          }
        });
      });
      await new Promise((resolve) => (client.exitCode !== null ? resolve(undefined) : client.once('exit', resolve)));
      const under = steps.filter(([, kib]) => kib <= MEMORY_LIMIT_KIB);
      const mostUnderLimit = under.length ? under[under.length - 1][0] : 0;
      const lastUnder = under[under.length - 1];
      const kibPerConnection = lastUnder && lastUnder[0] > 0 ? (lastUnder[1] - idleKiB) / lastUnder[0] : NaN;
      rows.push({ transport, idleKiB, steps, mostUnderLimit, endedBy, kibPerConnection });
    } finally {
      await stop(server);
    }
  }
  return rows;
}

// ---------------------------------------------------------------------------------------------
// Report

const LABEL: Record<TransportName, string> = { stdio: 'stdio', tcp: 'TCP', udp: 'UDP', http: 'HTTP', ws: 'WebSocket' };
const integer = (value: number): string => Math.round(value).toLocaleString('en-US');
const fixed = (value: number, digits: number): string => (Number.isFinite(value) ? value.toFixed(digits) : '-');
const mib = (kib: number): string => (kib / 1024).toFixed(1);

interface Results {
  date: string;
  machine: string;
  durationSeconds: number;
  replyBytes: number;
  cheap: ThroughputRow[];
  streaming: { throughput: StreamThroughputRow[]; latency: StreamLatencyRow[] };
  scale: ScaleRow[];
  bareIdleKiB: number;
}

function renderSection(results: Results): string {
  const lines: string[] = [];
  const out = (line = ''): void => {
    lines.push(line);
  };
  out(START_MARKER);
  out('## Whole server, per transport');
  out();
  out('Command: `npm run bench` (builds, then runs the addon, engine and server benches; the first two');
  out('print their tables for the sections above) or `npm run bench:server` (builds, then');
  out('`node dist/bench/server-bench.js`; options `--seconds N` per throughput round, default 3, and');
  out('`--rounds N`, default 2). The server bench rewrites this section and `docs/benchmarks-chart.png`;');
  out('its raw figures go to `dist/bench/server-results.json`.');
  out();
  out(`Machine: ${results.machine}; ${results.date}.`);
  out(`This section's run took ${Math.round(results.durationSeconds)} s.`);
  out();
  out('Everything runs on loopback with the emulated runtime. The server and its load clients are');
  out('separate processes sharing the two vCPUs: one server process and one load-client process at a');
  out('time (autocannon for HTTP; `bench/load/*.ts` for the others). For the cheap requests the server');
  out('is pinned to vCPU 0 and the client to vCPU 1 (`taskset`), so that every cell pays the same');
  out('cross-vCPU hand-off (unpinned, one-client cells flipped between two speeds as the scheduler');
  out('placed both processes on one vCPU or not). The VM is shared, and other');
  out('processes (other sessions\' test runs) were using CPU during this run: single figures move by');
  out('tens of percent from run to run, so read the ratios, not the third digit.');
  out();
  out('### Cheap requests against a bare baseline');
  out();
  out(`\`rkllm_createDefaultParam\` requests, closed loop: each client keeps one request in flight for ${secondsPerCell} s`);
  out(`(after 0.5 s of warm-up; autocannon has none); ${ROUNDS} rounds per cell alternating ours and the`);
  out('baseline, each side\'s best round shown (with its own latencies). "Baseline" is `bench/baselines/bare-server.ts`: a');
  out('plain Node server of the same transport (`node:net`, `node:dgram`, `node:http`, `ws`, stdin/stdout)');
  out(`that \`JSON.parse\`s each request and writes a reply of the same size (${results.replyBytes} bytes for id 1, the size of`);
  out('our real reply) with none of the project\'s code. It ran in the same bench run, alternating with ours');
  out('cell by cell. Over stdio there is one pipe pair, so "clients" are requests in flight on it. The');
  out('ratio is our requests/s over the baseline\'s. Target: 0.7 or more.');
  out();
  out('| transport | clients | ours (req/s) | median (ms) | p99 (ms) | baseline (req/s) | median (ms) | p99 (ms) | ratio |');
  out('|---|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const row of results.cheap) {
    out(
      `| ${LABEL[row.transport]} | ${row.clients} | ${integer(row.ours.requestsPerSecond)} | ${fixed(row.ours.medianMs, 3)} | ${fixed(row.ours.p99Ms, 3)} | ` +
        `${integer(row.baseline.requestsPerSecond)} | ${fixed(row.baseline.medianMs, 3)} | ${fixed(row.baseline.p99Ms, 3)} | **${fixed(row.ratio, 2)}** |`,
    );
  }
  const lostUdp = results.cheap.filter((row) => row.transport === 'udp').reduce((sum, row) => sum + (row.ours.lost ?? 0) + (row.baseline.lost ?? 0), 0);
  out();
  out('HTTP latencies come from autocannon, which reports whole milliseconds. UDP datagrams not answered');
  out(`within 200 ms are resent and not counted; ${lostUdp} were lost over all UDP cells.`);
  out();
  out('![Requests/s of rkllm-serve as a fraction of the bare baseline, per transport and client count](benchmarks-chart.png)');
  out();
  const missed = results.cheap.filter((row) => row.ratio < 0.7);
  if (missed.length === 0) {
    out('Target met in every cell.');
  } else {
    out(`Target **missed** in ${missed.length} of ${results.cheap.length} cells: ${missed.map((row) => `${LABEL[row.transport]} × ${row.clients} (${fixed(row.ratio, 2)})`).join(', ')}.`);
  }
  out();
  out(SERVER_GAP_NOTES);
  out();
  out('### Streaming');
  out();
  out('Tokens per second delivered, `sim:instant`: one client running `count to 50000` (149,000 tokens),');
  out('and 64 clients each starting `count to 2000` (5,000 tokens) at once, on a `sim:instant` model the');
  out('client loads with `rkllm_init` (handle `bench`, 262,144-token context: the start-up model\'s default');
  out('`max_new_tokens` would end the runs early). The 64 runs queue on the one model (one inference at');
  out('a time, as on an NPU), so that row is the aggregate rate through the queue.');
  out('The clients count notifications without parsing them. Target: 200,000 tokens/s to one TCP or');
  out('WebSocket client.');
  out();
  out('| transport | clients | tokens | seconds | tokens/s | server CPU (vCPUs busy) |');
  out('|---|---:|---:|---:|---:|---:|');
  for (const row of results.streaming.throughput) {
    out(`| ${LABEL[row.transport]} | ${row.clients} | ${integer(row.tokens)} | ${fixed(row.seconds, 3)} | ${integer(row.tokensPerSecond)} | ${fixed(row.serverCpuShare, 2)} |`);
  }
  out();
  const single = results.streaming.throughput.filter((row) => row.clients === 1);
  const singleMet = single.every((row) => row.tokensPerSecond >= 200_000);
  out(singleMet ? 'Target met on both.' : `Target **missed**: ${single.filter((row) => row.tokensPerSecond < 200_000).map((row) => `${LABEL[row.transport]} ${integer(row.tokensPerSecond)}`).join(', ')} tokens/s.`);
  out();
  out(STREAM_THROUGHPUT_NOTES);
  out();
  out(`Added latency, \`sim:rk3588-qwen2.5-1.5b\` (16.7 tokens/s), prompt \`${LATENCY_PROMPT}\`, ${LATENCY_RUNS} runs in a row`);
  out('on one connection. The server runs with `--enable-test-hooks`, under which each token notification also');
  out('carries `callback_us`, the CLOCK_MONOTONIC time of the runtime\'s callback (the addon\'s `time_us`);');
  out('the client, another process on the same machine, subtracts it from its own CLOCK_MONOTONIC time of');
  out('receipt. Added time-to-first-token: the client\'s send-to-first-token time minus the runtime\'s own');
  out('prefill time (`perf.prefill_time_ms` of the last notification), i.e. everything the server and');
  out('the wire add on the way in and out. Targets: p99 added latency under 1 ms; added TTFT under 2 ms.');
  out();
  out('| transport | tokens | median (ms) | p99 (ms) | max (ms) | added TTFT, median of runs (ms) | added TTFT, max (ms) |');
  out('|---|---:|---:|---:|---:|---:|---:|');
  for (const row of results.streaming.latency) {
    out(`| ${LABEL[row.transport]} | ${row.tokens} | ${fixed(row.medianMs, 3)} | ${fixed(row.p99Ms, 3)} | ${fixed(row.maxMs, 3)} | ${fixed(row.ttftAddedMedianMs, 3)} | ${fixed(row.ttftAddedMaxMs, 3)} |`);
  }
  out();
  const latencyMissed = results.streaming.latency.filter((row) => row.p99Ms >= 1);
  const ttftMissed = results.streaming.latency.filter((row) => row.ttftAddedMaxMs >= 2);
  out(
    latencyMissed.length === 0
      ? 'p99 target met on both.'
      : `p99 target **missed** on ${latencyMissed.map((row) => LABEL[row.transport]).join(' and ')}.`,
  );
  out(ttftMissed.length === 0 ? 'Added TTFT target met on every run.' : `Added TTFT target **missed** on ${ttftMissed.map((row) => LABEL[row.transport]).join(' and ')} (worst run).`);
  out();
  out(LATENCY_NOTES);
  out();
  out('### Scale: idle connections under 100 MiB');
  out();
  out('One server per transport (`--max-connections 20000`, only that transport on), and one client');
  out('process opening idle connections in steps of 1,000 up to 12,000; the server\'s');
  out('VmRSS (`/proc/<pid>/status`) is read 0.5 s after each step. TCP and WebSocket: connected sockets');
  out('(WebSocket: upgraded); HTTP: connected sockets that have not sent a request yet (a keep-alive');
  out('socket would be closed after Node\'s 5 s keep-alive timeout); UDP: peers that sent one request and');
  out('got the reply. stdio has one connection by nature. The search stops at 12,000 (the client and');
  out('server each need a descriptor per connection, and `ulimit -n` is 20,000 here).');
  out();
  out('| transport | idle RSS (MiB) | most open under 100 MiB | RSS there (MiB) | KiB per connection | search ended by |');
  out('|---|---:|---:|---:|---:|---|');
  for (const row of results.scale) {
    const at = row.steps.find(([open]) => open === row.mostUnderLimit);
    out(
      `| ${LABEL[row.transport]} | ${mib(row.idleKiB)} | ${integer(row.mostUnderLimit)}${row.endedBy.startsWith("the search's cap") ? '+' : ''} | ${at ? mib(at[1]) : '-'} | ${fixed(row.kibPerConnection, 1)} | ${row.endedBy} |`,
    );
  }
  out('| stdio | - | 1 | - | - | one stdin per process |');
  out();
  const ws = results.scale.find((row) => row.transport === 'ws');
  const ws1000 = ws?.steps.find(([open]) => open === 1000);
  if (ws) {
    out(`Server RSS idle (WebSocket only): ${mib(ws.idleKiB)} MiB; with 1,000 idle WebSocket connections: ${ws1000 ? mib(ws1000[1]) : '-'} MiB.`);
    out(`For scale: the bare TCP baseline (a Node process with one listening socket) is ${mib(results.bareIdleKiB)} MiB idle; the`);
    out('rest of the idle figure is the addon, the emulated runtime with its loaded `sim:instant` model,');
    out('and the server\'s modules (pino, ws, TypeBox schemas).');
    out();
  }
  out('"+" means the search\'s cap was reached still under 100 MiB; at the measured KiB per');
  out('connection the limit would be further out, but this bench does not claim what it did not open.');
  out(END_MARKER);
  return lines.join('\n');
}

// Explanations written from what the bench has shown on this machine; the tables above them are
// regenerated on every run, these words only when someone edits them.
const SERVER_GAP_NOTES = [
  'What limits the ratio. With one client each request is a round trip between two pinned vCPUs,',
  'bound by the cross-vCPU wake-up (see the addon section), and the two servers come out close.',
  'With 16 and 256 clients the server\'s vCPU is the limit, and the ratio is the cost of',
  'rkllm-serve\'s work per request against the baseline\'s: envelope checks, compiled TypeBox',
  'validation, the engine, per-connection bookkeeping and bounds, and above all the 14-field reply',
  'object serialised with `JSON.stringify` (see `npm run bench:engine`: the serialisation more than',
  'halves the engine\'s rate), against one `JSON.parse` and the stringify of a padded string. The',
  'baseline is the floor of Node itself, so a ratio under 0.7 there means our per-request CPU is more',
  'than 1.4 times a bare echo\'s. The loaded cells are also the noisiest: another session\'s test',
  'run shared the VM, and a cell where the baseline drew a quiet moment and ours did not (or the',
  'other way round) moves by a factor of two between runs of this command; the figures of earlier',
  'runs the same day put the same cells anywhere between 0.5 and 1.5. Rerun on a quiet machine',
  'before reading a single loaded cell.',
  '',
  'HTTP with one client is the odd cell: pinned, both servers answer autocannon\'s single connection',
  'far slower than unpinned (an unpinned run the same day: 12,017 req/s ours, 14,949 baseline, ratio',
  '0.80), and ours much slower than the baseline. The cause was not found within this bench\'s time',
  'box; treat that cell as unexplained, not as the server\'s cost.',
].join('\n');

const STREAM_THROUGHPUT_NOTES = [
  'What limits it: the server\'s one JavaScript thread. The server CPU column shows it busy for most',
  'of each run (the rest of the two vCPUs went to the client and to the other processes on the VM).',
  'In separate checks a client counting lines used about a third of a vCPU (`/usr/bin/time`), and',
  'the same server reached 87,000-96,000 tokens/s to one TCP client. The addon hands tokens over in',
  'batches (the addon section: over 600,000 tokens/s into JavaScript), but from there each token is',
  'its own notification: a stream chunk kept for `poll`, a message object, `JSON.stringify`, and one',
  '`socket.write` (TCP, stdio) or `ws.send` (WebSocket) per notification, which Node passes to the',
  'kernel at once, one send system call each: about 10 µs per token over TCP at this rate, more over',
  'WebSocket (framing). Writing the notifications of one addon batch with one write (or corking the',
  'socket around them) is the obvious next step towards the target; rerun this bench after it.',
].join('\n');

const LATENCY_NOTES = [
  'The added latency is one cross-process hand-off more than the addon section above measures',
  '(runtime thread → JavaScript thread → socket → client process), each a wake-up of an idle vCPU on',
  'this VM, whose cost the addon section describes; its p99 moves with the other tenants\' load.',
].join('\n');

function writeDoc(section: string): void {
  const current = fs.readFileSync(DOC, 'utf8');
  const start = current.indexOf(START_MARKER);
  const end = current.indexOf(END_MARKER);
  const next =
    start !== -1 && end !== -1 ? current.slice(0, start) + section + current.slice(end + END_MARKER.length) : current.trimEnd() + '\n\n' + section + '\n';
  fs.writeFileSync(DOC, next);
}

function writeChart(rows: ThroughputRow[]): void {
  const png = renderBarChart(
    {
      groups: TRANSPORTS.map((transport) => ({
        label: transport,
        values: CLIENT_COUNTS.map((clients) => rows.find((row) => row.transport === transport && row.clients === clients)?.ratio ?? 0),
      })),
      series: [
        { label: '1 client', colour: [120, 170, 220] },
        { label: '16 clients', colour: [40, 110, 180] },
        { label: '256 clients', colour: [20, 50, 110] },
      ],
      reference: 0.7,
      // A tick every 0.5 up to the tallest bar.
      ticks: Array.from({ length: Math.ceil(Math.max(1.2, ...rows.map((row) => row.ratio)) * 2) + 1 }, (_, index) => index / 2),
    },
    'ratio to bare baseline    dashed line  target 0.7',
  );
  fs.writeFileSync(CHART, png);
}

function machine(): string {
  const cpus = os.cpus();
  return `${cpus.length} vCPUs (${cpus[0]?.model.trim() ?? 'unknown'}), ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}, Linux ${os.release()} ${os.arch()}`;
}

async function main(): Promise<void> {
  // --from-results rewrites the section and the chart from the last run's figures, measuring
  // nothing: for when only the words of the section changed.
  if (process.argv.includes('--from-results')) {
    const saved = JSON.parse(fs.readFileSync(path.join(DIST_BENCH, 'server-results.json'), 'utf8')) as Results;
    writeChart(saved.cheap);
    writeDoc(renderSection(saved));
    log(`rewrote ${path.relative(REPO, DOC)} and ${path.relative(REPO, CHART)} from dist/bench/server-results.json`);
    return;
  }
  const started = Date.now();
  const probe = await startOurServer(['tcp']);
  const replyBytes = await realReplyBytes(probe.ports.tcp!);
  await stop(probe);
  log(`our reply to rkllm_createDefaultParam (id 1) is ${replyBytes} bytes`);
  const cheap = await measureCheapRequests(replyBytes);
  const streaming = await measureStreaming();
  const scale = await measureScale();
  const bareIdleKiB = await bareNodeKiB();
  const results: Results = {
    date: new Date().toISOString().slice(0, 10),
    machine: machine(),
    durationSeconds: (Date.now() - started) / 1000,
    replyBytes,
    cheap,
    streaming,
    scale,
    bareIdleKiB,
  };
  fs.writeFileSync(path.join(DIST_BENCH, 'server-results.json'), JSON.stringify(results, null, 2));
  writeChart(cheap);
  writeDoc(renderSection(results));
  log(`wrote ${path.relative(REPO, DOC)} and ${path.relative(REPO, CHART)} in ${Math.round(results.durationSeconds)} s`);
}

function killChildren(): void {
  for (const child of children) child.kill('SIGKILL');
}

process.on('exit', killChildren);
process.on('SIGINT', () => process.exit(130));
process.on('SIGTERM', () => process.exit(143));

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
