// Helpers of the suites on native threads and model admission: a client per transport, batches
// of requests sent as one message (split over datagrams on UDP), the thread count of the server
// from /proc, and a way to run it under a thread limit (RLIMIT_NPROC).

import { execFile } from 'child_process';
import * as fs from 'fs';
import { promisify } from 'util';
import {
  HttpClient,
  MessageClient,
  ServerProcess,
  TcpClient,
  UdpClient,
  WsClient,
  sleep,
  withTimeout,
  type RpcClient,
  type RpcMessage,
  type Transport,
} from '../integration/client';

const run = promisify(execFile);

export interface Call {
  method: string;
  params?: unknown;
}

/** A client of `server` on `transport` (stdio: the child's own pipes). */
export async function clientOn(server: ServerProcess, transport: Transport): Promise<RpcClient> {
  switch (transport) {
    case 'stdio':
      return server.stdio();
    case 'tcp':
      return TcpClient.connect(server.port('tcp'));
    case 'udp': {
      const client = await UdpClient.open(server.port('udp'));
      // The replies of a batch split over datagrams come back in a burst.
      client.socket.setRecvBufferSize(4 * 1024 * 1024);
      return client;
    }
    case 'websocket':
      return WsClient.connect(server.port('websocket'));
    case 'http':
      return new HttpClient(server.port('http'));
  }
}

/** Requests per datagram when a batch goes over UDP (each datagram must stay under 64 KiB). */
const UDP_BATCH = 250;
let batchCounter = 0;

/**
 * Sends `calls` as JSON-RPC batches of `perBatch` (default: one batch; on UDP at most UDP_BATCH
 * per datagram), all at once, and resolves with the replies in the order of the calls.
 */
export async function sendBatch(client: RpcClient, calls: readonly Call[], timeoutMs: number, perBatch = calls.length): Promise<RpcMessage[]> {
  const tag = `batch${++batchCounter}`;
  const requests = calls.map((call, index) => {
    const request: Record<string, unknown> = { jsonrpc: '2.0', id: `${tag}-${index}`, method: call.method };
    if (call.params !== undefined) request.params = call.params;
    return request;
  });
  const order = new Map(requests.map((request, index) => [request.id as string, index]));
  const replies: RpcMessage[] = new Array<RpcMessage>(calls.length);
  const batches: Record<string, unknown>[][] = [];
  const size = client.transport === 'udp' ? Math.min(perBatch, UDP_BATCH) : perBatch;
  for (let start = 0; start < requests.length; start += size) batches.push(requests.slice(start, start + size));
  if (client instanceof HttpClient) {
    const posted = await Promise.all(batches.map((batch) => client.post(JSON.stringify(batch), {}, timeoutMs)));
    for (const reply of posted) {
      if (!Array.isArray(reply.json)) throw new Error(`HTTP ${reply.status}: not a batch reply: ${reply.text.slice(0, 300)}`);
      for (const message of reply.json as RpcMessage[]) replies[order.get(String(message.id)) ?? -1] = message;
    }
    return replies;
  }
  if (!(client instanceof MessageClient)) throw new Error(`no batch support for ${client.transport}`);
  // One waiter that counts every reply, rather than one per id (a flood would make that quadratic).
  let missing = calls.length;
  const all = client.waitFor(
    `${calls.length} replies of ${tag}`,
    (message) => {
      const index = message.method === undefined ? order.get(String(message.id)) : undefined;
      if (index === undefined || replies[index] !== undefined) return false;
      replies[index] = message;
      return --missing === 0;
    },
    timeoutMs,
  );
  for (const batch of batches) client.sendText(JSON.stringify(batch));
  await all;
  return replies;
}

/** `work`, unless the server exits first: then a rejection that says how it died. */
export function whileAlive<T>(server: ServerProcess, work: Promise<T>): Promise<T> {
  const died = server.exited.then((exit) => {
    throw new Error(`the server died (exit code ${exit.code}, signal ${exit.signal}); stderr ends:\n${server.stderrText.slice(-1500)}`);
  });
  died.catch(() => undefined);
  return Promise.race([work, died]);
}

/** Threads of a process, from /proc/<pid>/status. */
export function threadCount(pid: number): number {
  const match = /^Threads:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!match) throw new Error(`no Threads line in /proc/${pid}/status`);
  return Number(match[1]);
}

/** The thread count once it holds still for `quietMs` (threads of finished work take a moment to go). */
export async function settledThreadCount(pid: number, quietMs = 300, timeoutMs = 5000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let last = threadCount(pid);
  for (;;) {
    await sleep(quietMs);
    const now = threadCount(pid);
    if (now === last) return now;
    if (Date.now() > deadline) throw new Error(`the thread count of ${pid} did not settle within ${timeoutMs} ms (${last}, then ${now})`);
    last = now;
  }
}

/** The highest thread count seen while `work` runs, sampled every few milliseconds. */
export async function peakThreadsDuring<T>(pid: number, work: () => Promise<T>): Promise<{ result: T; peak: number }> {
  let peak = threadCount(pid);
  const timer = setInterval(() => {
    try {
      peak = Math.max(peak, threadCount(pid));
    } catch {
      // The process is gone: the work's own failure says why.
    }
  }, 2);
  try {
    const result = await work();
    return { result, peak: Math.max(peak, threadCount(pid)) };
  } finally {
    clearInterval(timer);
  }
}

/** Threads (tasks) of every process of this user, as RLIMIT_NPROC counts them. */
function threadsOfUser(uid: number): number {
  let total = 0;
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const status = fs.readFileSync(`/proc/${entry}/status`, 'utf8');
      const owner = /^Uid:\s+(\d+)/m.exec(status);
      const threads = /^Threads:\s+(\d+)/m.exec(status);
      if (owner && threads && Number(owner[1]) === uid) total += Number(threads[1]);
    } catch {
      // Gone meanwhile.
    }
  }
  return total;
}

/**
 * The wrapper that starts the server with `threads` threads to spare under RLIMIT_NPROC. The limit
 * counts every thread of the user and does not apply to root, so as root the server runs as a
 * user id of its own (no other process has it); otherwise the limit is the user's threads now
 * plus `threads`.
 */
export function threadLimitWrapper(threads: number): string[] {
  const uid = process.getuid?.() ?? 0;
  if (uid !== 0) return ['prlimit', `--nproc=${threadsOfUser(uid) + threads}`];
  const own = 40_000 + (process.pid % 20_000);
  return ['setpriv', `--reuid=${own}`, `--regid=${own}`, '--clear-groups', 'prlimit', `--nproc=${threads}`];
}

function ownerOf(pid: number): number {
  const owner = /^Uid:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!owner) throw new Error(`no Uid line in /proc/${pid}/status`);
  return Number(owner[1]);
}

/**
 * Sets the soft RLIMIT_NPROC of a running process, up to its hard limit. Done as the process's
 * own user: changing another user's limits takes CAP_SYS_RESOURCE, which root may lack here.
 */
export async function setThreadLimit(pid: number, limit: number): Promise<void> {
  const owner = ownerOf(pid);
  const prlimit = ['prlimit', '--pid', String(pid), `--nproc=${limit}:`];
  const [command, ...args] = owner === (process.getuid?.() ?? 0) ? prlimit : ['setpriv', `--reuid=${owner}`, `--regid=${owner}`, '--clear-groups', ...prlimit];
  await withTimeout(run(command, args), 5000, `${command} ${args.join(' ')}`);
}

/** The threads RLIMIT_NPROC counts for a process: every thread of its real user. */
export function threadsOfServerUser(pid: number): number {
  return threadsOfUser(ownerOf(pid));
}

/** A model on sim:slow-abort whose runs go on for 20 s unless aborted (its abort takes 1 s). */
export async function loadSlowAbortModel(client: RpcClient, handle: string): Promise<void> {
  const reply = await client.request(
    'rkllm_init',
    { handle, param: { model_path: 'sim:slow-abort', max_context_len: 4096, max_new_tokens: 4000 } },
    { timeoutMs: 10_000 },
  );
  if (reply.error) throw new Error(`rkllm_init of sim:slow-abort failed: ${JSON.stringify(reply.error)}`);
}
