// docs/cluster.md, proven: three real rkllm-serve on loopback ports behind Debian's haproxy, run
// with the documented docs/cluster/haproxy.cfg (only the addresses and the check interval are
// substituted). Requests spread over the three (leastconn), a board killed mid-stream is taken
// out of rotation and its client's retry gets a whole answer from another, and a board still
// loading its model gets no traffic until it is ready; the API key and WebSocket pass through.
// Which board answered is the X-Served-By header the documented config adds.

import { spawn, type ChildProcess } from 'child_process';
import * as fs from 'fs';
import * as http from 'http';
import * as net from 'net';
import * as path from 'path';
import WebSocket from 'ws';
import {
  countTo,
  HOST,
  makeTempDir,
  REPO_ROOT,
  ServerProcess,
  stopAllServers,
  waitUntil,
  withTimeout,
  writePacedModel,
} from '../integration/client';

const HAPROXY = '/usr/sbin/haproxy';
const CONFIG = path.join(REPO_ROOT, 'docs', 'cluster', 'haproxy.cfg');
const BOARDS = ['board1', 'board2', 'board3'] as const;
type Board = (typeof BOARDS)[number];
/** The pace of every board's model: a stream of countTo(COUNT) takes about 2 s, of countTo(SHORT) 0.3 s. */
const DECODE_MS_PER_TOKEN = 25;
const COUNT = 40;
const SHORT = 5;
/** How long board3's model takes to load. */
const SLOW_LOAD_MS = 6000;
/** The check interval put in for the documented 2 s, so a state change shows within a second. */
const TEST_CHECK_INTERVAL = '200ms';
const REQUEST_TIMEOUT_MS = 20_000;
/** Every board has the same key; the balancer passes Authorization through. */
const API_KEY = 'cluster-test-key';
const AUTH = { authorization: `Bearer ${API_KEY}` };

interface Ports {
  http: number;
  websocket: number;
}

let dir: string;
let boardPorts: Record<Board, Ports>;
let lbPort: number;
let lbWsPort: number;
let statsPort: number;
let haproxy: ChildProcess | undefined;
const haproxyOutput: string[] = [];
const servers = new Map<Board, ServerProcess>();

/** A port that was free a moment ago (haproxy's config needs the numbers before anything binds). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen(0, HOST, () => {
      const { port } = probe.address() as net.AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

/** Replaces `pattern` in `text`, which must occur exactly `count` times (the documented config changed otherwise). */
function substitute(text: string, pattern: string, replacement: string, count: number): string {
  const found = text.split(pattern).length - 1;
  if (found !== count) throw new Error(`${CONFIG}: expected ${count} × '${pattern}', found ${found}: update the test with the config`);
  return text.split(pattern).join(replacement);
}

function testConfig(): string {
  let text = fs.readFileSync(CONFIG, 'utf8');
  BOARDS.forEach((board, index) => {
    const address = `192.168.1.2${index + 1}`;
    text = substitute(text, `${address}:8082`, `${HOST}:${boardPorts[board].http}`, 2);
    text = substitute(text, `${address}:8083`, `${HOST}:${boardPorts[board].websocket}`, 1);
  });
  text = substitute(text, 'bind :8082', `bind ${HOST}:${lbPort}`, 1);
  text = substitute(text, 'bind :8083', `bind ${HOST}:${lbWsPort}`, 1);
  text = substitute(text, 'bind 127.0.0.1:8404', `bind ${HOST}:${statsPort}`, 1);
  text = substitute(text, 'check inter 2s', `check inter ${TEST_CHECK_INTERVAL}`, 1);
  return text;
}

function startBoard(board: Board, model: string, wait: boolean): Promise<ServerProcess> | ServerProcess {
  const options = {
    model,
    disable: ['stdio', 'tcp', 'udp'] as ('stdio' | 'tcp' | 'udp')[],
    ports: boardPorts[board],
    stdin: 'devnull' as const,
    args: ['--api-key', API_KEY],
  };
  if (!wait) {
    const server = ServerProcess.spawn(options);
    servers.set(board, server);
    return server;
  }
  return ServerProcess.start(options).then((server) => {
    servers.set(board, server);
    return server;
  });
}

/** GET /health straight from a board: true on 200 (loading, failed or not listening: false). */
function boardReady(board: Board): Promise<boolean> {
  return new Promise((resolve) => {
    const request = http.get({ host: HOST, port: boardPorts[board].http, path: '/health', timeout: 2000, agent: false }, (response) => {
      response.resume();
      resolve(response.statusCode === 200);
    });
    request.once('timeout', () => request.destroy());
    request.once('error', () => resolve(false));
  });
}

/** The rows of haproxy's stats CSV for the servers of the rkllm_boards backend, by server name. */
async function boardStats(): Promise<Record<string, Record<string, string>>> {
  const csv = await new Promise<string>((resolve, reject) => {
    const request = http.get({ host: HOST, port: statsPort, path: '/stats;csv', timeout: 2000, agent: false }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (data: string) => (body += data));
      response.on('end', () => resolve(body));
    });
    request.once('timeout', () => request.destroy(new Error('the stats page did not answer')));
    request.once('error', reject);
  });
  const [header, ...rows] = csv.trim().split('\n');
  const columns = header.replace(/^# /, '').split(',');
  const stats: Record<string, Record<string, string>> = {};
  for (const row of rows) {
    const fields = row.split(',');
    const record = Object.fromEntries(columns.map((column, index) => [column, fields[index]]));
    if (record.pxname === 'rkllm_boards' && record.svname !== 'BACKEND') stats[record.svname] = record;
  }
  return stats;
}

/** haproxy's view of each board ("UP", "DOWN", ...). */
async function boardStates(): Promise<Record<string, string>> {
  const stats = await boardStats();
  return Object.fromEntries(Object.entries(stats).map(([board, record]) => [board, record.status]));
}

async function waitForStates(expected: Partial<Record<Board, 'UP' | 'DOWN'>>, timeoutMs: number): Promise<void> {
  let last: Record<string, string> = {};
  try {
    await waitUntil(
      `haproxy to see ${JSON.stringify(expected)}`,
      async () => {
        // haproxy may not listen yet: ask again.
        last = await boardStates().catch((error: Error) => ({ stats: error.message }));
        return Object.entries(expected).every(([board, state]) => last[board]?.startsWith(state));
      },
      timeoutMs,
      100,
    );
  } catch (error) {
    throw new Error(`${(error as Error).message}; last seen ${JSON.stringify(last)}; haproxy said:\n${haproxyOutput.join('').slice(-3000)}`);
  }
}

interface ChatOutcome {
  status: number;
  board: string | undefined;
  /** The answer's text: whole when `complete`. */
  text: string;
  /** The stream ended with `data: [DONE]` (a non-streamed answer: the body parsed). */
  complete: boolean;
}

/**
 * One OpenAI chat request through haproxy, streamed or not. `onFirstToken` is called once the
 * first content arrives. A stream cut short resolves with complete: false, never rejects.
 */
function chat(
  stream: boolean,
  count: number,
  onFirstToken?: (board: string | undefined) => void,
  headers: Record<string, string> = AUTH,
): Promise<ChatOutcome> {
  const body = JSON.stringify({ model: 'default', stream, messages: [{ role: 'user', content: `count to ${count}` }] });
  const outcome = new Promise<ChatOutcome>((resolve, reject) => {
    const request = http.request(
      {
        host: HOST,
        port: lbPort,
        method: 'POST',
        path: '/v1/chat/completions',
        agent: false,
        headers: { ...headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      },
      (response) => {
        const board = response.headers['x-served-by'] as string | undefined;
        let raw = '';
        let text = '';
        let done = false;
        let told = false;
        const finish = (): void => {
          if (!stream) {
            try {
              const parsed = JSON.parse(raw) as { choices?: { message?: { content?: string } }[] };
              text = parsed.choices?.[0]?.message?.content ?? '';
              done = response.statusCode === 200;
            } catch {
              done = false;
            }
          }
          resolve({ status: response.statusCode ?? 0, board, text, complete: done });
        };
        response.setEncoding('utf8');
        response.on('data', (data: string) => {
          raw += data;
          if (!stream) return;
          const events = raw.split('\n\n');
          raw = events.pop() ?? '';
          for (const event of events) {
            const payload = event.replace(/^data: /, '');
            if (payload === '[DONE]') {
              done = true;
              continue;
            }
            const delta = (JSON.parse(payload) as { choices: { delta: { content?: string } }[] }).choices[0]?.delta?.content ?? '';
            text += delta;
            if (delta !== '' && !told) {
              told = true;
              onFirstToken?.(board);
            }
          }
        });
        response.once('end', finish);
        // The board died mid-answer: haproxy cuts the client's connection.
        response.once('aborted', finish);
        response.once('error', finish);
      },
    );
    request.once('error', reject);
    request.end(body);
  });
  return withTimeout(outcome, REQUEST_TIMEOUT_MS, 'a chat request through haproxy');
}

function countBy(outcomes: readonly ChatOutcome[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const outcome of outcomes) counts[outcome.board ?? 'none'] = (counts[outcome.board ?? 'none'] ?? 0) + 1;
  return counts;
}

beforeAll(async () => {
  if (!fs.existsSync(HAPROXY)) throw new Error(`${HAPROXY} is missing: run 'bash scripts/install-test-deps.sh' (Debian's haproxy package)`);
  dir = makeTempDir('cluster');
  const ports: number[] = [];
  while (ports.length < 9) {
    const port = await freePort();
    if (!ports.includes(port)) ports.push(port);
  }
  boardPorts = {
    board1: { http: ports[0], websocket: ports[1] },
    board2: { http: ports[2], websocket: ports[3] },
    board3: { http: ports[4], websocket: ports[5] },
  };
  [lbPort, lbWsPort, statsPort] = ports.slice(6);

  const fast = writePacedModel(fs.mkdtempSync(path.join(dir, 'fast-')), { decode_ms_per_token: DECODE_MS_PER_TOKEN });
  const slow = writePacedModel(fs.mkdtempSync(path.join(dir, 'slow-')), { load_ms: SLOW_LOAD_MS, decode_ms_per_token: DECODE_MS_PER_TOKEN });
  await Promise.all([startBoard('board1', fast, true), startBoard('board2', fast, true)]);
  // board3 is still loading when haproxy starts.
  startBoard('board3', slow, false);

  const configFile = path.join(dir, 'haproxy.cfg');
  fs.writeFileSync(configFile, testConfig());
  // -db: in the foreground, not a daemon, so it is this test's child and dies with it.
  haproxy = spawn(HAPROXY, ['-db', '-f', configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
  for (const stream of [haproxy.stdout!, haproxy.stderr!]) {
    stream.setEncoding('utf8');
    stream.on('data', (data: string) => haproxyOutput.length < 10_000 && haproxyOutput.push(data));
  }
  await waitForStates({ board1: 'UP', board2: 'UP', board3: 'DOWN' }, 10_000);
}, 60_000);

afterAll(async () => {
  if (haproxy && haproxy.exitCode === null) {
    const exited = new Promise((resolve) => haproxy!.once('exit', resolve));
    haproxy.kill('SIGTERM');
    await withTimeout(exited, 3000, 'haproxy to exit').catch(() => undefined);
    if (haproxy.exitCode === null) haproxy.kill('SIGKILL');
  }
  await stopAllServers();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
}, 20_000);

test('a board still loading its model gets no traffic; once ready it is taken into rotation', async () => {
  expect(await boardReady('board3')).toBe(false);
  const whileLoading = await Promise.all(Array.from({ length: 8 }, () => chat(false, SHORT)));
  // The claim holds only if board3 was still loading when the last answer came.
  expect(await boardReady('board3')).toBe(false);
  for (const outcome of whileLoading) expect(outcome).toMatchObject({ status: 200, text: countTo(SHORT), complete: true });
  expect(Object.keys(countBy(whileLoading)).sort()).toEqual(['board1', 'board2']);

  await waitUntil('board3 to finish loading', () => boardReady('board3'), SLOW_LOAD_MS + 10_000, 100);
  await waitForStates({ board1: 'UP', board2: 'UP', board3: 'UP' }, 5000);
  const afterLoad = await Promise.all(Array.from({ length: 6 }, () => chat(false, SHORT)));
  expect(countBy(afterLoad).board3).toBeGreaterThan(0);
}, 40_000);

test('requests spread over the three boards, least connections first', async () => {
  await waitUntil('board3 to finish loading', () => boardReady('board3'), SLOW_LOAD_MS + 10_000, 100);
  await waitForStates({ board1: 'UP', board2: 'UP', board3: 'UP' }, 5000);
  // Three streams at once: each board has one connection before any has two.
  const together = await Promise.all(BOARDS.map(() => chat(true, COUNT)));
  for (const outcome of together) expect(outcome).toMatchObject({ status: 200, text: countTo(COUNT), complete: true });
  expect(countBy(together)).toEqual({ board1: 1, board2: 1, board3: 1 });
  // One after another: equal loads take turns.
  const sequential: ChatOutcome[] = [];
  for (let i = 0; i < 9; i++) sequential.push(await chat(false, SHORT));
  for (const outcome of sequential) expect(outcome).toMatchObject({ status: 200, text: countTo(SHORT), complete: true });
  for (const board of BOARDS) expect(countBy(sequential)[board]).toBeGreaterThan(0);
}, 60_000);

test('the API key passes through the balancer to the boards, which check it; their health checks need none', async () => {
  const refused = await chat(false, SHORT, undefined, {});
  expect(refused.status).toBe(401);
  expect(BOARDS).toContain(refused.board);
  const wrong = await chat(false, SHORT, undefined, { authorization: 'Bearer not-the-key' });
  expect(wrong.status).toBe(401);
  expect(await chat(false, SHORT)).toMatchObject({ status: 200, text: countTo(SHORT), complete: true });
  expect(await boardStates()).toEqual({ board1: 'UP', board2: 'UP', board3: 'UP' });
});

test('WebSocket through the balancer: the upgrade reaches a board in rotation, and JSON-RPC flows over it', async () => {
  const socket = new WebSocket(`ws://${HOST}:${lbWsPort}/`, { headers: AUTH });
  try {
    const board = await withTimeout(
      new Promise<string | undefined>((resolve, reject) => {
        socket.once('upgrade', (response) => resolve(response.headers['x-served-by'] as string | undefined));
        socket.once('error', reject);
      }),
      5000,
      'the WebSocket upgrade through haproxy',
    );
    expect(BOARDS).toContain(board);
    await withTimeout(new Promise((resolve) => (socket.readyState === WebSocket.OPEN ? resolve(undefined) : socket.once('open', resolve))), 5000, 'the socket to open');
    const reply = withTimeout(
      new Promise<string>((resolve) => socket.once('message', (data) => resolve(String(data)))),
      5000,
      'a JSON-RPC reply over the WebSocket',
    );
    socket.send(JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'rkllm_get_constants' }));
    expect(JSON.parse(await reply)).toMatchObject({ jsonrpc: '2.0', id: 7, result: expect.any(Object) });
  } finally {
    socket.terminate();
  }
});

test('a board killed mid-stream is taken out of rotation, and its client retries onto another board', async () => {
  const killed: Board = 'board2';
  let killedAt = 0;
  const streams = BOARDS.map(() =>
    chat(true, COUNT, (board) => {
      if (board === killed && killedAt === 0) {
        killedAt = Date.now();
        servers.get(killed)!.child.kill('SIGKILL');
      }
    }),
  );
  const outcomes = await Promise.all(streams);
  expect(killedAt).toBeGreaterThan(0);
  const cut = outcomes.filter((outcome) => outcome.board === killed);
  const whole = outcomes.filter((outcome) => outcome.board !== killed);
  expect(cut).toHaveLength(1);
  // The client of the killed board saw its stream end before [DONE], with part of the answer.
  expect(cut[0].complete).toBe(false);
  expect(countTo(COUNT).startsWith(cut[0].text)).toBe(true);
  expect(cut[0].text.length).toBeLessThan(countTo(COUNT).length);
  for (const outcome of whole) expect(outcome).toMatchObject({ status: 200, text: countTo(COUNT), complete: true });

  // Its retry, sent at once, gets the whole answer elsewhere (haproxy has usually marked the board
  // down by then: the last test covers a request that still reaches a dead board).
  const retry = await chat(true, COUNT);
  expect(retry).toMatchObject({ status: 200, text: countTo(COUNT), complete: true });
  expect(retry.board).not.toBe(killed);

  await waitForStates({ board1: 'UP', board2: 'DOWN', board3: 'UP' }, 5000);
  const after = await Promise.all(Array.from({ length: 6 }, () => chat(false, SHORT)));
  for (const outcome of after) expect(outcome).toMatchObject({ status: 200, text: countTo(SHORT), complete: true });
  expect(Object.keys(countBy(after)).sort()).toEqual(['board1', 'board3']);
}, 60_000);

test('JSON-RPC over HTTP (POST /) stays on one board for one client address, for its poll streams', async () => {
  const boards = new Set<string | undefined>();
  for (let i = 0; i < 4; i++) {
    const reply = await new Promise<{ status: number; board?: string; body: string }>((resolve, reject) => {
      const body = JSON.stringify({ jsonrpc: '2.0', id: i, method: 'rkllm_get_constants' });
      const request = http.request(
        { host: HOST, port: lbPort, method: 'POST', path: '/', agent: false, headers: { ...AUTH, 'content-type': 'application/json' } },
        (response) => {
          let text = '';
          response.setEncoding('utf8');
          response.on('data', (data: string) => (text += data));
          response.on('end', () => resolve({ status: response.statusCode ?? 0, board: response.headers['x-served-by'] as string | undefined, body: text }));
        },
      );
      request.once('error', reject);
      request.end(body);
    });
    expect(reply.status).toBe(200);
    expect(JSON.parse(reply.body)).toMatchObject({ jsonrpc: '2.0', id: i });
    boards.add(reply.board);
  }
  expect(boards.size).toBe(1);
  expect([...boards][0]).toMatch(/^board[13]$/);
}, 30_000);

test('a request that reaches a board which has just died is retried on another, before any check notices', async () => {
  // board3 dies with no request in flight: only a refused connection can tell haproxy.
  await waitForStates({ board1: 'UP', board3: 'UP' }, 5000);
  const before = (await boardStats()).board3;
  const board3 = servers.get('board3')!;
  board3.child.kill('SIGKILL');
  await withTimeout(board3.exited, 5000, 'board3 to exit');
  // Sent at once: the next check is at most one interval away and one failed check is not enough
  // (fall 2), so leastconn still counts board3 in and sends it its share.
  const outcomes = await Promise.all(Array.from({ length: 4 }, () => chat(false, SHORT)));
  for (const outcome of outcomes) expect(outcome).toMatchObject({ status: 200, board: 'board1', text: countTo(SHORT), complete: true });
  const after = (await boardStats()).board3;
  // wredis: requests redispatched from board3 to another server after their connection failed.
  expect(Number(after.wredis)).toBeGreaterThan(Number(before.wredis));
  await waitForStates({ board1: 'UP', board2: 'DOWN', board3: 'DOWN' }, 5000);
}, 30_000);
