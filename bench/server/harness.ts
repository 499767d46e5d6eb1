// The harness of the server bench: starting rkllm-serve and the bare baselines as child processes,
// pinning processes to a vCPU with taskset, running load clients to their end, reading a process's
// memory and CPU time, and alternating the rounds of two servers into a ratio. Every wait on a
// child is bounded, and every child is killed when the bench exits.

import { type ChildProcess, spawn } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

/** The repository root; this file runs as dist/bench/server/harness.js. */
export const REPO = path.resolve(__dirname, '..', '..', '..');
export const BIN = path.join(REPO, 'bin', 'rkllm-serve');
/** dist/bench: where the compiled load clients and baselines are. */
export const DIST_BENCH = path.resolve(__dirname, '..');

export const TRANSPORTS = ['stdio', 'tcp', 'udp', 'http', 'ws'] as const;
export type TransportName = (typeof TRANSPORTS)[number];
/** How the docs and the chart name each transport. */
export const TRANSPORT_LABEL: Record<TransportName, string> = { stdio: 'stdio', tcp: 'TCP', udp: 'UDP', http: 'HTTP', ws: 'WebSocket' };
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
const STOP_GRACE_MS = 3000;

export function log(line: string): void {
  process.stderr.write(`[bench:server ${new Date().toISOString().slice(11, 19)}] ${line}\n`);
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------------------------------------
// Children

const children = new Set<ChildProcess>();

function track(child: ChildProcess): ChildProcess {
  children.add(child);
  child.on('exit', () => children.delete(child));
  return child;
}

/** Spawns a child that is killed with the bench, whichever way the bench ends. */
export function spawnTracked(file: string, args: string[], stdio: Array<'ignore' | 'pipe' | 'inherit'>): ChildProcess {
  return track(spawn(file, args, { stdio }));
}

export function killAllChildren(): void {
  for (const child of children) child.kill('SIGKILL');
}

/** Bounded wait for a line of a child's output that `accept` takes. */
export function waitForLine(stream: NodeJS.ReadableStream, what: string, timeoutMs: number, accept: (line: string) => boolean): Promise<void> {
  return new Promise((resolve, reject) => {
    let pending = '';
    const finish = (error?: Error): void => {
      clearTimeout(timer);
      stream.off('data', onData);
      stream.off('end', onEnd);
      if (error) reject(error);
      else resolve();
    };
    const timer = setTimeout(() => finish(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)), timeoutMs);
    const onEnd = (): void => finish(new Error(`the output ended before ${what}`));
    const onData = (data: Buffer): void => {
      pending += data.toString('utf8');
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      if (lines.some(accept)) finish();
    };
    stream.on('data', onData);
    stream.on('end', onEnd);
  });
}

// ---------------------------------------------------------------------------------------------
// Pinning

// In the cheap-request runs the server is pinned to vCPU 0 and its load client to vCPU 1. Unpinned,
// a one-client ping-pong ran at either about 9,000 or about 23,000 requests/s depending on whether
// the scheduler happened to put both processes on one vCPU (no cross-vCPU wake-up), which swamped
// the difference between the servers. Pinned, every cell pays the same cross-vCPU hand-off.
export const SERVER_CPU = 0;
export const CLIENT_CPU = 1;
const TASKSET = '/usr/bin/taskset';
const canPin = os.cpus().length >= 2 && fs.existsSync(TASKSET);

/** A node command line, run on one vCPU when `cpu` is given (taskset execs it: the pid stays). */
export function nodeCommand(cpu: number | undefined, args: string[]): [string, ...string[]] {
  if (cpu === undefined || !canPin) return [process.execPath, ...args];
  return [TASKSET, '-c', String(cpu), process.execPath, ...args];
}

// ---------------------------------------------------------------------------------------------
// Servers

export interface RunningServer {
  child: ChildProcess;
  ports: Partial<Record<TransportName, number>>;
}

/** The rkllm-serve arguments that run the emulated runtime with only `transports` on. */
export function ourServerArgs(transports: readonly TransportName[], extraArgs: string[] = [], bin = BIN): string[] {
  const disabled = TRANSPORTS.filter((name) => !transports.includes(name)).map((name) => DISABLE_FLAG[name]);
  return [bin, '--runtime', 'sim', ...disabled, ...extraArgs];
}

export function baselineArgs(transport: TransportName, replyBytes: number): string[] {
  return [path.join(DIST_BENCH, 'baselines', 'bare-server.js'), '--transport', transport, '--reply-bytes', String(replyBytes)];
}

/**
 * Starts rkllm-serve with the given network transports on free ports; resolves once each listens.
 * `bin` is another checkout's bin/rkllm-serve for a before/after comparison.
 */
export async function startOurServer(
  transports: Exclude<TransportName, 'stdio'>[],
  extraArgs: string[] = [],
  cpu?: number,
  bin = BIN,
): Promise<RunningServer> {
  const [file, ...args] = nodeCommand(cpu, ourServerArgs(transports, [...PORT_FLAGS, ...extraArgs], bin));
  const child = spawnTracked(file, args, ['ignore', 'ignore', 'pipe']);
  const ports: Partial<Record<TransportName, number>> = {};
  try {
    await waitForLine(child.stderr!, `listening lines of ${transports.join(', ')}`, 20_000, (line) => {
      try {
        const record = JSON.parse(line) as { transport?: string; port?: number; msg?: string };
        const name = transports.find((candidate) => SERVER_NAME[candidate] === record.transport);
        if (name && typeof record.port === 'number' && /listening/.test(record.msg ?? '')) ports[name] = record.port;
      } catch {
        // not a log line
      }
      return transports.every((name) => ports[name] !== undefined);
    });
  } catch (error) {
    await stop({ child, ports });
    throw error;
  }
  // Keep draining stderr so the server never blocks on a full pipe.
  child.stderr!.resume();
  return { child, ports };
}

export async function startBaseline(transport: Exclude<TransportName, 'stdio'>, replyBytes: number, cpu?: number): Promise<RunningServer> {
  const [file, ...args] = nodeCommand(cpu, baselineArgs(transport, replyBytes));
  const child = spawnTracked(file, args, ['ignore', 'pipe', 'inherit']);
  let port = 0;
  try {
    await waitForLine(child.stdout!, `the ${transport} baseline's port`, 10_000, (line) => {
      try {
        port = (JSON.parse(line) as { port: number }).port;
      } catch {
        return false;
      }
      return typeof port === 'number';
    });
  } catch (error) {
    await stop({ child, ports: {} });
    throw error;
  }
  return { child, ports: { [transport]: port } };
}

/** SIGTERM, then SIGKILL if the server has not exited within the grace period. */
export async function stop(server: RunningServer): Promise<void> {
  const { child } = server;
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
  await exited;
  clearTimeout(timer);
}

/** Runs `body` with a server started by `start`, and stops the server however `body` ends. */
export async function withServer<T>(start: () => Promise<RunningServer>, body: (server: RunningServer) => Promise<T>): Promise<T> {
  const server = await start();
  try {
    return await body(server);
  } finally {
    await stop(server);
  }
}

// ---------------------------------------------------------------------------------------------
// Load clients

/** Runs a node script to its end (killed after `timeoutMs`) and returns its last stdout line parsed. */
export function runClient<T>(args: string[], timeoutMs: number, cpu?: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const [file, ...rest] = nodeCommand(cpu, args);
    const child = spawnTracked(file, rest, ['ignore', 'pipe', 'inherit']);
    const name = path.basename(args[0]);
    let output = '';
    let timedOut = false;
    child.stdout!.on('data', (data: Buffer) => (output += data.toString('utf8')));
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (timedOut) return reject(new Error(`${name} did not finish within ${timeoutMs} ms`));
      if (code !== 0) return reject(new Error(`${name} exited with ${code ?? signal}: ${output.slice(0, 300)}`));
      const last = output.trim().split('\n').pop() ?? '';
      try {
        resolve(JSON.parse(last) as T);
      } catch {
        reject(new Error(`${name} ended without a JSON line: ${last.slice(0, 300)}`));
      }
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Memory and time

export function residentKiB(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const match = /VmRSS:\s+(\d+) kB/.exec(status);
  if (!match) throw new Error(`no VmRSS for ${pid}`);
  return Number(match[1]);
}

/** user + system CPU seconds of a process so far (/proc/<pid>/stat fields 14 and 15, in ticks). */
export function cpuSeconds(pid: number): number {
  const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  // After the ") " the fields start at field 3 (state), so utime (14) and stime (15) are at 11, 12.
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** The soft limit on open files of this process (children inherit it); null when unlimited or unknown. */
export function openFilesLimit(): number | null {
  const match = /^Max open files\s+(\d+)/m.exec(fs.readFileSync('/proc/self/limits', 'utf8'));
  return match ? Number(match[1]) : null;
}

export function machine(): string {
  const cpus = os.cpus();
  return `${cpus.length} vCPUs (${cpus[0]?.model.trim() ?? 'unknown'}), ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}, Linux ${os.release()} ${os.arch()}`;
}

// ---------------------------------------------------------------------------------------------
// A/B runs

/**
 * Runs `a` then `b`, `rounds` times in turn, and keeps each side's best round by `score`. Other
 * processes on a shared machine take CPU at random moments; alternating spreads them over both
 * sides, and the best round is the least disturbed one.
 */
export async function alternate<T>(rounds: number, a: () => Promise<T>, b: () => Promise<T>, score: (figure: T) => number): Promise<[T, T]> {
  if (!(rounds >= 1)) throw new Error(`alternate: rounds must be 1 or more, not ${rounds}`);
  const better = (current: T | undefined, next: T): T => (current === undefined || score(next) > score(current) ? next : current);
  let bestA: T | undefined;
  let bestB: T | undefined;
  for (let round = 0; round < rounds; round++) {
    bestA = better(bestA, await a());
    bestB = better(bestB, await b());
  }
  return [bestA!, bestB!];
}

/** ours / baseline; NaN when the baseline measured nothing, so no cell claims an infinite ratio. */
export function ratio(ours: number, baseline: number): number {
  return baseline > 0 ? ours / baseline : NaN;
}
