// The integration suites' client: spawns the real bin/rkllm-serve as a child process, learns its
// ports from the listening lines on stderr, and talks JSON-RPC 2.0 to it over real sockets on
// 127.0.0.1 (stdio through the child's pipes). The talking is lib/client's (rkllm-serve/client);
// this file adds the suites' bookkeeping and the server process. Every wait is bounded by a
// timeout, and every server it starts is stopped by stopAllServers() (each suite's afterAll/afterEach).

import { spawn, type ChildProcess } from 'child_process';
import * as dgram from 'dgram';
import * as fs from 'fs';
import * as http from 'http';
import * as net from 'net';
import * as os from 'os';
import * as path from 'path';
import WebSocket from 'ws';
import * as rpc from '../../lib/client';
import { LineSplitter } from '../../lib/framing/line-splitter';
import { SseParser, type SseSink } from '../../lib/framing/sse';

export const REPO_ROOT = path.resolve(__dirname, '..', '..');
export const BIN = path.join(REPO_ROOT, 'bin', 'rkllm-serve');
export const HOST = '127.0.0.1';

export type Transport = 'stdio' | 'tcp' | 'udp' | 'http' | 'websocket';
export type NetworkTransport = Exclude<Transport, 'stdio'>;
export const TRANSPORTS: readonly Transport[] = ['stdio', 'tcp', 'udp', 'http', 'websocket'];
export const NETWORK_TRANSPORTS: readonly NetworkTransport[] = ['tcp', 'udp', 'http', 'websocket'];

/** LLMCallState values (docs/wire-contract.md, docs/rkllm-abi.md). */
export const STATE = { NORMAL: 0, WAITING: 1, FINISH: 2, ERROR: 3 } as const;

/** Every method of the table in docs/wire-contract.md but the test hook. */
export const PROTOCOL_METHODS = [
  'rkllm_createDefaultParam',
  'rkllm_init',
  'rkllm_destroy',
  'rkllm_run',
  'rkllm_run_async',
  'rkllm_abort',
  'rkllm_is_running',
  'rkllm_load_lora',
  'rkllm_load_prompt_cache',
  'rkllm_release_prompt_cache',
  'rkllm_clear_kv_cache',
  'rkllm_get_kv_cache_size',
  'rkllm_set_chat_template',
  'rkllm_set_function_tools',
  'rkllm_set_cross_attn_params',
  'rkllm_list_functions',
  'rkllm_get_constants',
  'poll',
  'cancel',
] as const;

const FLAG_FOR_PORT: Record<NetworkTransport, string> = {
  tcp: '--tcp-port',
  udp: '--udp-port',
  http: '--http-port',
  websocket: '--ws-port',
};
const FLAG_FOR_DISABLE: Record<Transport, string> = {
  stdio: '--disable-stdio',
  tcp: '--disable-tcp',
  udp: '--disable-udp',
  http: '--disable-http',
  websocket: '--disable-ws',
};

// ---------------------------------------------------------------------------------------------
// Small helpers

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Resolves with the first truthy value of check(), polled every intervalMs; throws after timeoutMs. */
export async function waitUntil<T>(
  what: string,
  check: () => T | Promise<T>,
  timeoutMs: number,
  intervalMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: T | undefined;
  for (;;) {
    last = await check();
    if (last) return last;
    if (Date.now() >= deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${String(last)})`);
    await sleep(intervalMs);
  }
}

/** Rejects with a clear message when promise has not settled within ms. */
export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Runs fn over items with at most `limit` in flight. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await fn(items[index], index);
    }
  });
  await Promise.all(workers);
  return results;
}

/** "1, 2, ..., n": the emulated model's answer to "count to n". */
export function countTo(n: number): string {
  return Array.from({ length: n }, (_, i) => String(i + 1)).join(', ');
}

export function makeTempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `rkllm-it-${prefix}-`));
}

/** The timing of an emulated model file (docs/emulated-runtime.md); what is left out keeps its default. */
export interface EmulatedTiming {
  load_ms?: number;
  prefill_ms_per_token?: number;
  decode_ms_per_token?: number;
}

/** Writes `<dir>/paced.json`, an emulated model of our own with the given pace; returns its path. */
export function writePacedModel(dir: string, timing: EmulatedTiming, maxContextLen = 8192): string {
  const file = path.join(dir, 'paced.json');
  fs.writeFileSync(file, JSON.stringify({ format: 'rkllm-emulated-model', version: 1, name: 'paced', timing, limits: { max_context_len: maxContextLen } }));
  return file;
}

/** GET /health's answer, which must be a 200. */
export async function readHealth<T>(control: HttpClient): Promise<T> {
  const reply = await control.health();
  expect(reply.status).toBe(200);
  return reply.json as T;
}

export function openFdCount(pid: number): number {
  return fs.readdirSync(`/proc/${pid}/fd`).length;
}

/** VmRSS of a process in KiB. */
export function residentKiB(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  if (!match) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(match[1]);
}

export function isListening(port: number, host = HOST, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host });
    const timer = setTimeout(() => {
      socket.destroy();
      resolve(false);
    }, timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => {
      clearTimeout(timer);
      socket.destroy();
      resolve(false);
    });
  });
}

// ---------------------------------------------------------------------------------------------
// JSON-RPC shapes

export interface RpcError {
  code: number;
  message: string;
  data?: unknown;
}

export interface RpcMessage {
  jsonrpc?: string;
  id?: unknown;
  method?: string;
  params?: any;
  result?: any;
  error?: RpcError;
}

/** The params of one rkllm_result notification. */
export interface ResultChunk {
  stream_id: string | number;
  request_id: unknown;
  seq: number;
  state: number;
  text?: string | null;
  token_id?: number;
  aborted?: boolean;
  perf?: Record<string, number>;
  error?: unknown;
  [key: string]: unknown;
}

export interface TimedChunk {
  chunk: ResultChunk;
  at: number;
}

export interface StreamOutcome {
  id: unknown;
  method: string;
  sentAt: number;
  /** The JSON-RPC reply to the request (for rkllm_run: the final result; for run_async: {stream_id}). */
  response?: RpcMessage;
  responseAt?: number;
  /** rkllm_result notifications of this request, in arrival order. */
  chunks: TimedChunk[];
  final?: ResultChunk;
  finalAt?: number;
  /** Every chunk's text, in seq order. */
  text: string;
  streamId?: string | number;
}

export function isFinalChunk(chunk: ResultChunk): boolean {
  return chunk.state === STATE.FINISH || chunk.state === STATE.ERROR || chunk.aborted === true;
}

export function joinChunks(chunks: readonly TimedChunk[]): string {
  return [...chunks]
    .sort((a, b) => a.chunk.seq - b.chunk.seq)
    .map((c) => (typeof c.chunk.text === 'string' ? c.chunk.text : ''))
    .join('');
}

/** Throws unless seqs are exactly 0..n-1 (in arrival order when inOrder). */
export function assertContiguous(chunks: readonly TimedChunk[], inOrder = true): void {
  const seqs = chunks.map((c) => c.chunk.seq);
  const sorted = inOrder ? seqs : [...seqs].sort((a, b) => a - b);
  for (let i = 0; i < sorted.length; i++) {
    if (sorted[i] !== i) throw new Error(`seq not contiguous from 0: ${JSON.stringify(seqs.slice(0, 50))}`);
  }
}

export interface RequestOptions {
  id?: string | number;
  timeoutMs?: number;
}

export interface StreamOptions extends RequestOptions {
  /** Called for each notification of this stream as it arrives. */
  onChunk?: (chunk: ResultChunk, outcome: StreamOutcome) => void;
  /** Called once with the outcome being filled in (to inspect it even if the wait times out). */
  onStart?: (outcome: StreamOutcome) => void;
}

/** What every transport's client offers the suites. */
export interface RpcClient {
  readonly transport: Transport;
  request(method: string, params?: unknown, options?: RequestOptions): Promise<RpcMessage>;
  /** A request that starts a stream (rkllm_run with stream:true, or rkllm_run_async), to its end. */
  stream(method: string, params: unknown, options?: StreamOptions): Promise<StreamOutcome>;
  close(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// Clients of message transports (stdio, TCP, UDP, WebSocket), layered over lib/client: the
// library's transport and RpcClient carry and match the messages; this layer keeps the suites'
// bookkeeping of everything received (arrival times, unparsable texts, foreign notifications).

interface Waiter {
  match: (message: RpcMessage) => boolean;
  resolve: (message: RpcMessage) => void;
}

let idCounter = 0;

/** When each received message (and each notification's params object) arrived. */
const arrivals = new WeakMap<object, number>();

function noteArrival(message: rpc.IncomingMessage, at: number): void {
  arrivals.set(message, at);
  if (typeof message.params === 'object' && message.params !== null) arrivals.set(message.params, at);
}

/** Sends on a lib/client transport without waiting; a closed transport drops the text, as a dead socket would. */
function fireAndForget(sending: Promise<void>): void {
  sending.catch((error: unknown) => {
    if (!(error instanceof rpc.ClientError)) {
      queueMicrotask(() => {
        throw error;
      });
    }
  });
}

/**
 * Reads a lib/client stream into a StreamOutcome. A request refused outright (queue full, bad
 * params) starts no stream: its outcome has the error response and no chunks.
 */
async function collectStream(
  stream: rpc.ResultStream,
  outcome: StreamOutcome,
  options: StreamOptions,
  describe: () => string,
): Promise<StreamOutcome> {
  const noteResponse = (reply: rpc.ReplyMessage): void => {
    if (outcome.response !== undefined) return;
    outcome.response = reply as RpcMessage;
    outcome.responseAt = arrivals.get(reply) ?? Date.now();
    const streamId = outcome.response.result?.stream_id;
    if (streamId !== undefined) outcome.streamId ??= streamId;
  };
  stream.reply.then(noteResponse, () => undefined);
  const timeoutMs = options.timeoutMs ?? 20_000;
  try {
    for await (const chunk of stream) {
      const at = arrivals.get(chunk) ?? Date.now();
      outcome.streamId ??= chunk.stream_id;
      outcome.chunks.push({ chunk: chunk as ResultChunk, at });
      if (isFinalChunk(chunk as ResultChunk) && outcome.final === undefined) {
        outcome.final = chunk as ResultChunk;
        outcome.finalAt = at;
      }
      options.onChunk?.(chunk as ResultChunk, outcome);
    }
    noteResponse(await stream.reply);
  } catch (error) {
    if (!(error instanceof rpc.RpcResponseError)) {
      if (rpc.isClientError(error, 'TIMEOUT')) throw new Error(`timed out after ${timeoutMs} ms: ${describe()}`);
      throw error;
    }
    noteResponse(await stream.reply);
  }
  outcome.text = joinChunks(outcome.chunks);
  return outcome;
}

export abstract class MessageClient implements RpcClient {
  abstract readonly transport: Transport;
  /** Every message received, with its arrival time. */
  readonly received: { message: RpcMessage; at: number }[] = [];
  /** Texts received that were not JSON. */
  readonly unparsable: string[] = [];
  /** Notifications whose request_id this client never sent, or whose stream it never started. */
  readonly foreign: RpcMessage[] = [];
  readonly sentIds = new Set<string>();
  readonly myStreams = new Set<string>();
  closed = false;
  closeInfo: { code?: number; reason?: string } = {};
  /** The lib/client client underneath. */
  readonly rpc: rpc.RpcClient;
  protected readonly medium: rpc.ClientTransport;
  private waiters = new Set<Waiter>();
  /** Streams being read by stream(), by request id: the stream id they turned out to have. */
  private collecting = new Map<string, { streamId?: string }>();
  private closeListeners: (() => void)[] = [];
  protected readonly label: string;

  protected constructor(label: string, medium: rpc.ClientTransport) {
    this.label = label;
    this.medium = medium;
    this.rpc = new rpc.RpcClient(medium);
    this.rpc.onMessage((message) => this.record(message));
    this.rpc.onUnparsable((text) => this.unparsable.push(text));
    medium.onClose((info) => {
      if (info.code !== undefined) this.closeInfo = { code: info.code, reason: info.detail };
      this.markClosed();
    });
  }

  abstract close(): Promise<void>;

  /** Sends one framed message as is (a line, a datagram, a frame). */
  sendText(text: string): void {
    fireAndForget(this.medium.send(text));
  }

  /** Sends bytes with no framing added (for garbage and partial frames). */
  sendRaw(data: string | Buffer): void {
    fireAndForget(this.medium.sendBytes(data));
  }

  /** Abrupt drop: a TCP reset, a WebSocket terminate (UDP: the socket closes). */
  drop(): void {
    this.medium.drop();
  }

  nextId(): string {
    return `${this.label}-${++idCounter}`;
  }

  send(message: Record<string, unknown>): void {
    if (message.id !== undefined) this.sentIds.add(JSON.stringify(message.id));
    this.sendText(JSON.stringify(message));
  }

  protected markClosed(): void {
    if (this.closed) return;
    this.closed = true;
    for (const listener of this.closeListeners.splice(0)) listener();
  }

  /** Resolves when the peer closes; rejects after timeoutMs. */
  waitClosed(timeoutMs: number): Promise<void> {
    if (this.closed) return Promise.resolve();
    return withTimeout(new Promise<void>((resolve) => this.closeListeners.push(resolve)), timeoutMs, `${this.label}: close`);
  }

  private record(incoming: rpc.IncomingMessage): void {
    const at = Date.now();
    noteArrival(incoming, at);
    const message = incoming as RpcMessage;
    this.received.push({ message, at });
    if (message.method === 'rkllm_result' && message.params) {
      const chunk = message.params as ResultChunk;
      const key = JSON.stringify(chunk.request_id);
      if (!this.sentIds.has(key)) this.foreign.push(message);
      const collecting = this.collecting.get(key);
      if (collecting) {
        if (collecting.streamId === undefined) {
          collecting.streamId = String(chunk.stream_id);
          this.myStreams.add(collecting.streamId);
        }
        if (String(chunk.stream_id) !== collecting.streamId) this.foreign.push(message);
      } else if (!this.myStreams.has(String(chunk.stream_id))) {
        this.foreign.push(message);
      }
    } else if (message.id !== undefined && message.method === undefined) {
      const collecting = this.collecting.get(JSON.stringify(message.id));
      const streamId = message.result?.stream_id;
      if (collecting && collecting.streamId === undefined && streamId !== undefined) {
        collecting.streamId = String(streamId);
        this.myStreams.add(collecting.streamId);
      }
    }
    for (const waiter of [...this.waiters]) {
      if (waiter.match(message)) {
        this.waiters.delete(waiter);
        waiter.resolve(message);
      }
    }
  }

  /** The first message (already received or still to come) that matches, within timeoutMs. */
  waitFor(what: string, match: (message: RpcMessage) => boolean, timeoutMs = 10_000): Promise<RpcMessage> {
    const found = this.received.find((r) => match(r.message));
    if (found) return Promise.resolve(found.message);
    let waiter: Waiter | undefined;
    const promise = new Promise<RpcMessage>((resolve) => {
      waiter = { match, resolve };
      this.waiters.add(waiter);
    });
    return withTimeout(promise, timeoutMs, `${this.label}: ${what}`).finally(() => {
      if (waiter) this.waiters.delete(waiter);
    });
  }

  /** The reply to the request with this id. */
  waitForReply(id: unknown, timeoutMs = 10_000): Promise<RpcMessage> {
    const key = JSON.stringify(id);
    return this.waitFor(`reply to id ${key}`, (m) => m.method === undefined && JSON.stringify(m.id) === key, timeoutMs);
  }

  async request(method: string, params?: unknown, options: RequestOptions = {}): Promise<RpcMessage> {
    const id = options.id ?? this.nextId();
    this.sentIds.add(JSON.stringify(id));
    return (await this.rpc.call(method, params, { id, timeoutMs: options.timeoutMs ?? 10_000 })) as RpcMessage;
  }

  async stream(method: string, params: unknown, options: StreamOptions = {}): Promise<StreamOutcome> {
    const id = options.id ?? this.nextId();
    const key = JSON.stringify(id);
    const timeoutMs = options.timeoutMs ?? 20_000;
    const outcome: StreamOutcome = { id, method, sentAt: Date.now(), chunks: [], text: '' };
    options.onStart?.(outcome);
    this.sentIds.add(key);
    this.collecting.set(key, {});
    try {
      const stream = this.rpc.stream(method, params, { id, timeoutMs, idleTimeoutMs: timeoutMs });
      return await collectStream(
        stream,
        outcome,
        options,
        () => `${this.label}: ${method} stream ${key} to its end (${outcome.chunks.length} chunks, response ${outcome.response ? 'received' : 'missing'})`,
      );
    } finally {
      this.collecting.delete(key);
    }
  }
}

export class TcpClient extends MessageClient {
  readonly transport = 'tcp' as const;
  readonly socket: net.Socket;

  private constructor(medium: rpc.TcpTransport, label: string) {
    super(label, medium);
    this.socket = medium.socket;
  }

  static async connect(port: number, timeoutMs = 5000, label = 'tcp'): Promise<TcpClient> {
    return new TcpClient(await rpc.TcpTransport.connect({ host: HOST, port, connectTimeoutMs: timeoutMs }), label);
  }

  /** FIN, then the server's close (bounded; a reset after that). */
  close(): Promise<void> {
    return this.medium.close();
  }
}

/** The server's challenge to an address that has not yet shown it can receive (docs/transports.md, UDP). */
export const ADDRESS_NOT_VERIFIED = -32019;

export interface UdpClientOptions {
  /** Sent as "auth" on the handshake: with --api-key, a stranger without it gets no answer at all. */
  apiKey?: string;
}

export class UdpClient extends MessageClient {
  readonly transport = 'udp' as const;
  readonly socket: dgram.Socket;

  private constructor(medium: rpc.UdpTransport, label: string) {
    super(label, medium);
    this.socket = medium.socket;
  }

  /** The client does the server's handshake (lib/client); with --api-key it needs the key for it. */
  static async open(port: number, label = 'udp', options: UdpClientOptions = {}): Promise<UdpClient> {
    return new UdpClient(await rpc.UdpTransport.open({ host: HOST, port, bindAddress: HOST, apiKey: options.apiKey }), label);
  }

  close(): Promise<void> {
    return this.medium.close();
  }
}

export class WsClient extends MessageClient {
  readonly transport = 'websocket' as const;
  readonly ws: WebSocket;

  private constructor(medium: rpc.WebSocketTransport, label: string) {
    super(label, medium);
    this.ws = medium.socket;
  }

  static async connect(port: number, timeoutMs = 5000, label = 'ws', options: WebSocket.ClientOptions = {}): Promise<WsClient> {
    const medium = await rpc.WebSocketTransport.connect({ url: `ws://${HOST}:${port}/`, connectTimeoutMs: timeoutMs, clientOptions: options });
    return new WsClient(medium, label);
  }

  /** A close frame, then the server's (bounded; terminated after that). */
  close(): Promise<void> {
    return this.medium.close();
  }
}

/** stdio: the child's stdin and stdout, as an editor or agent tool would use them. */
export class StdioClient extends MessageClient {
  readonly transport = 'stdio' as const;

  constructor(child: ChildProcess) {
    if (!child.stdin || !child.stdout) throw new Error('the server was not started with stdin/stdout pipes');
    super('stdio', rpc.StdioTransport.ofChild(child));
  }

  /** Ends stdin (EOF for the server's stdio transport). */
  async close(): Promise<void> {
    (this.medium as rpc.StdioTransport).end();
  }
}

// ---------------------------------------------------------------------------------------------
// HTTP: POST / with a JSON body; SSE with Accept: text/event-stream; GET /health. JSON-RPC calls
// and streams go through lib/client; raw() and sse() are plain HTTP for the suites' own checks.

export interface HttpReply {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  json?: any;
}

export interface SseEvent {
  event?: string;
  data: string;
  json?: any;
  at: number;
}

export class HttpClient implements RpcClient {
  readonly transport = 'http' as const;
  readonly agent: http.Agent | false;
  /** SSE events that were not JSON, and notifications of requests this client did not make. */
  readonly unparsable: string[] = [];
  readonly foreign: RpcMessage[] = [];
  private requests = new Set<http.ClientRequest>();
  /** The lib/client transports of calls and streams in flight. */
  private media = new Set<rpc.HttpTransport>();
  private plainClient: rpc.RpcClient | undefined;

  /** keepAlive false: every request on a connection of its own, closed after the reply. */
  constructor(
    readonly port: number,
    options: { keepAlive?: boolean } = {},
  ) {
    this.agent = options.keepAlive === false ? false : new http.Agent({ keepAlive: true, maxSockets: 64 });
  }

  /** The client of plain POSTs (made again after close(), which drops what is in flight). */
  private get plain(): rpc.RpcClient {
    if (this.plainClient === undefined || this.plainClient.closed) {
      const medium = new rpc.HttpTransport({ url: this.url, agent: this.agent });
      this.media.add(medium);
      this.plainClient = new rpc.RpcClient(medium);
    }
    return this.plainClient;
  }

  private get url(): string {
    return `http://${HOST}:${this.port}/`;
  }

  /** Any HTTP request; the body is read whole. Rejects on timeout or a socket error. */
  raw(
    method: string,
    urlPath: string,
    body?: string | Buffer,
    headers: http.OutgoingHttpHeaders = {},
    timeoutMs = 10_000,
  ): Promise<HttpReply> {
    return withTimeout(
      new Promise<HttpReply>((resolve, reject) => {
        const req = http.request(
          { host: HOST, port: this.port, method, path: urlPath, headers, agent: this.agent },
          (res) => {
            const parts: Buffer[] = [];
            res.on('data', (d: Buffer) => parts.push(d));
            res.on('error', reject);
            res.on('end', () => {
              const text = Buffer.concat(parts).toString('utf8');
              let json: unknown;
              try {
                json = text.length ? JSON.parse(text) : undefined;
              } catch {
                json = undefined;
              }
              resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
            });
          },
        );
        this.requests.add(req);
        req.on('close', () => this.requests.delete(req));
        req.on('error', reject);
        if (body !== undefined) req.end(body);
        else req.end();
      }),
      timeoutMs,
      `HTTP ${method} ${urlPath}`,
    );
  }

  post(body: string | Buffer, headers: http.OutgoingHttpHeaders = {}, timeoutMs = 10_000): Promise<HttpReply> {
    return this.raw('POST', '/', body, { 'content-type': 'application/json', ...headers }, timeoutMs);
  }

  async request(method: string, params?: unknown, options: RequestOptions = {}): Promise<RpcMessage> {
    const id = options.id ?? `http-${++idCounter}`;
    return (await this.plain.call(method, params, { id, timeoutMs: options.timeoutMs ?? 10_000 })) as RpcMessage;
  }

  async health(): Promise<HttpReply> {
    return this.raw('GET', '/health');
  }

  /**
   * POST with Accept: text/event-stream. Resolves with every event (data parsed as JSON) when the
   * server ends the response. onEvent sees each event as it arrives; `abort` cuts the request.
   */
  sse(
    body: string,
    options: { timeoutMs?: number; onEvent?: (event: SseEvent, req: http.ClientRequest) => void } = {},
  ): Promise<{ status: number; headers: http.IncomingHttpHeaders; events: SseEvent[]; text?: string }> {
    return withTimeout(
      new Promise((resolve, reject) => {
        const req = http.request(
          {
            host: HOST,
            port: this.port,
            method: 'POST',
            path: '/',
            agent: this.agent,
            headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
          },
          (res) => {
            const events: SseEvent[] = [];
            const contentType = String(res.headers['content-type'] ?? '');
            if (!contentType.startsWith('text/event-stream')) {
              const parts: Buffer[] = [];
              res.on('data', (d: Buffer) => parts.push(d));
              res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, events, text: Buffer.concat(parts).toString() }));
              return;
            }
            const parser = new SseParser(64 * 1024 * 1024);
            const sink: SseSink = {
              event: ({ type, data }) => {
                let json: unknown;
                try {
                  json = JSON.parse(data);
                } catch {
                  json = undefined;
                }
                const event: SseEvent = { event: type === 'message' ? undefined : type, data, json, at: Date.now() };
                events.push(event);
                options.onEvent?.(event, req);
              },
              overflow: () => undefined,
            };
            res.on('data', (d: Buffer) => parser.push(d, sink));
            res.on('error', reject);
            res.on('aborted', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, events }));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, events }));
          },
        );
        this.requests.add(req);
        req.on('close', () => this.requests.delete(req));
        req.on('error', reject);
        req.end(body);
      }),
      options.timeoutMs ?? 20_000,
      'HTTP SSE response',
    );
  }

  /** A streaming request over SSE, shaped like the message transports' streams. */
  async stream(method: string, params: unknown, options: StreamOptions = {}): Promise<StreamOutcome> {
    const id = options.id ?? `http-${++idCounter}`;
    const key = JSON.stringify(id);
    const timeoutMs = options.timeoutMs ?? 20_000;
    const outcome: StreamOutcome = { id, method, sentAt: Date.now(), chunks: [], text: '' };
    options.onStart?.(outcome);
    // A transport of its own: each stream is one exchange, and what arrives in it is its own.
    const medium = new rpc.HttpTransport({ url: this.url, eventStream: true, agent: this.agent });
    this.media.add(medium);
    const client = new rpc.RpcClient(medium);
    client.onUnparsable((text) => this.unparsable.push(text));
    client.onMessage((message) => {
      noteArrival(message, Date.now());
      const chunk = message.params as ResultChunk | undefined;
      if (message.method === 'rkllm_result' && JSON.stringify(chunk?.request_id) !== key) this.foreign.push(message as RpcMessage);
    });
    let ended = false;
    try {
      const stream = client.stream(method, params, { id, timeoutMs, idleTimeoutMs: timeoutMs });
      const result = await collectStream(stream, outcome, options, () => 'HTTP SSE response');
      ended = true;
      return result;
    } finally {
      this.media.delete(medium);
      if (ended) await medium.close();
      else medium.drop();
    }
  }

  async close(): Promise<void> {
    for (const req of this.requests) req.destroy();
    for (const medium of this.media) medium.drop();
    this.media.clear();
    if (this.agent) this.agent.destroy();
  }
}

/** The message transports' clients of one server: stdio (the child's pipes), TCP, UDP, WebSocket. */
export type MessageClients = Record<'stdio' | 'tcp' | 'udp' | 'websocket', MessageClient>;

/** Opens one client of each message transport into `clients` (a suite's shared record). */
export async function openMessageClients(server: ServerProcess, clients: Partial<MessageClients>): Promise<void> {
  clients.stdio = server.stdio();
  clients.tcp = await TcpClient.connect(server.port('tcp'));
  clients.udp = await UdpClient.open(server.port('udp'));
  clients.websocket = await WsClient.connect(server.port('websocket'));
}

/** Closes what openMessageClients opened (stdio goes with the server). */
export async function closeMessageClients(clients: Partial<MessageClients>): Promise<void> {
  for (const transport of ['tcp', 'udp', 'websocket'] as const) await clients[transport]?.close();
}

export async function connectClient(server: ServerProcess, transport: Transport): Promise<RpcClient> {
  switch (transport) {
    case 'stdio':
      return server.stdio();
    case 'tcp':
      return TcpClient.connect(server.port('tcp'));
    case 'udp':
      return UdpClient.open(server.port('udp'));
    case 'websocket':
      return WsClient.connect(server.port('websocket'));
    case 'http':
      return new HttpClient(server.port('http'));
  }
}

// ---------------------------------------------------------------------------------------------
// The server process

export interface StartOptions {
  /** --runtime; default 'sim'. null leaves the flag out. */
  runtime?: string | null;
  model?: string;
  disable?: Transport[];
  /** Ports to listen on (default 0: a free one each). */
  ports?: Partial<Record<NetworkTransport, number>>;
  /** Extra command-line arguments. */
  args?: string[];
  /** stdin of the child: a pipe (default) or /dev/null. */
  stdin?: 'pipe' | 'devnull';
  /** The network transports whose listening lines to wait for (default: every one not disabled). */
  expect?: NetworkTransport[];
  /** Bound on the wait for every listening line. */
  readyTimeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  /** A command to run the server under (['prlimit', '--nproc=300']); it must exec node in place. */
  wrapper?: string[];
}

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
  at: number;
}

const liveServers = new Set<ServerProcess>();
/** Longer stderr lines are skipped (a log line is a few hundred bytes). */
const STDERR_LINE_BYTES = 16 * 1024 * 1024;

export class ServerProcess {
  readonly child: ChildProcess;
  readonly ports: Partial<Record<NetworkTransport, number>> = {};
  /** Every stderr line (capped), and those that parsed as JSON log records. */
  readonly stderrLines: string[] = [];
  readonly logs: Record<string, unknown>[] = [];
  readonly exited: Promise<ExitInfo>;
  exitInfo?: ExitInfo;
  stdioReady = false;
  private stdioClient?: StdioClient;
  private listeners = new Set<() => void>();

  private constructor(child: ChildProcess) {
    this.child = child;
    liveServers.add(this);
    this.exited = new Promise<ExitInfo>((resolve) => {
      child.once('exit', (code, signal) => {
        this.exitInfo = { code, signal, at: Date.now() };
        liveServers.delete(this);
        resolve(this.exitInfo);
        this.notify();
      });
    });
    const splitter = new LineSplitter(STDERR_LINE_BYTES);
    const sink = {
      line: (line: string) => {
        if (line.length > 0) this.onStderrLine(line);
      },
      overflow: () => undefined,
    };
    child.stderr!.on('data', (data: Buffer) => splitter.push(data, sink));
  }

  get pid(): number {
    return this.child.pid!;
  }

  get stderrText(): string {
    return this.stderrLines.join('\n');
  }

  port(transport: NetworkTransport): number {
    const port = this.ports[transport];
    if (port === undefined) throw new Error(`the server did not report a listening ${transport} port`);
    return port;
  }

  private notify(): void {
    for (const listener of this.listeners) listener();
  }

  private onStderrLine(line: string): void {
    if (this.stderrLines.length < 50_000) this.stderrLines.push(line);
    let record: Record<string, unknown> | undefined;
    try {
      const value = JSON.parse(line) as unknown;
      if (value && typeof value === 'object' && !Array.isArray(value)) record = value as Record<string, unknown>;
    } catch {
      record = undefined;
    }
    if (!record) return;
    if (this.logs.length < 50_000) this.logs.push(record);
    const msg = typeof record.msg === 'string' ? record.msg : '';
    const transport = record.transport;
    if (typeof transport === 'string' && typeof record.port === 'number' && /listening/.test(msg)) {
      if ((NETWORK_TRANSPORTS as readonly string[]).includes(transport)) this.ports[transport as NetworkTransport] = record.port;
      this.notify();
    } else if (msg === 'stdio ready') {
      this.stdioReady = true;
      this.notify();
    }
  }

  /** Resolves when cond() holds; rejects when the process exits first or after timeoutMs. */
  waitFor(what: string, cond: () => boolean, timeoutMs: number): Promise<void> {
    if (cond()) return Promise.resolve();
    let listener: (() => void) | undefined;
    const promise = new Promise<void>((resolve, reject) => {
      listener = () => {
        if (cond()) resolve();
        else if (this.exitInfo)
          reject(
            new Error(
              `the server exited (code ${this.exitInfo.code}, signal ${this.exitInfo.signal}) before ${what}; stderr:\n${this.stderrText.slice(-4000)}`,
            ),
          );
      };
      this.listeners.add(listener);
      listener();
    });
    return withTimeout(promise, timeoutMs, `${what}; stderr so far:\n${this.stderrText.slice(-4000)}`).finally(() => {
      if (listener) this.listeners.delete(listener);
    });
  }

  static buildArgs(options: StartOptions): string[] {
    const args: string[] = [];
    const runtime = options.runtime === undefined ? 'sim' : options.runtime;
    if (runtime !== null) args.push('--runtime', runtime);
    if (options.model) args.push('--model', options.model);
    const disabled = new Set(options.disable ?? []);
    for (const transport of NETWORK_TRANSPORTS) if (!disabled.has(transport)) args.push(FLAG_FOR_PORT[transport], String(options.ports?.[transport] ?? 0));
    for (const transport of disabled) args.push(FLAG_FOR_DISABLE[transport]);
    if (!(options.args ?? []).includes('--log-level')) args.push('--log-level', 'info');
    args.push(...(options.args ?? []));
    return args;
  }

  /** Spawns `node bin/rkllm-serve` without waiting for anything. */
  static spawn(options: StartOptions = {}): ServerProcess {
    const [command, ...prefix] = options.wrapper ?? [];
    const argv = [BIN, ...ServerProcess.buildArgs(options)];
    const child = spawn(command ?? process.execPath, command === undefined ? argv : [...prefix, process.execPath, ...argv], {
      cwd: REPO_ROOT,
      stdio: [options.stdin === 'devnull' ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      env: { ...process.env, ...options.env },
    });
    return new ServerProcess(child);
  }

  /** Spawns the server and waits (bounded) for the listening line of every enabled transport. */
  static async start(options: StartOptions = {}): Promise<ServerProcess> {
    const server = ServerProcess.spawn(options);
    const disabled = new Set(options.disable ?? []);
    const expected = options.expect ?? NETWORK_TRANSPORTS.filter((t) => !disabled.has(t));
    const waitStdio = !disabled.has('stdio') && options.stdin !== 'devnull';
    try {
      await server.waitFor(
        `listening lines for ${expected.join(', ')}${waitStdio ? ' and stdio ready' : ''}`,
        () => expected.every((t) => server.ports[t] !== undefined) && (!waitStdio || server.stdioReady),
        options.readyTimeoutMs ?? 20_000,
      );
    } catch (error) {
      await server.stop();
      throw error;
    }
    return server;
  }

  /** The stdio client (one per server: it owns the child's stdin and stdout). */
  stdio(): StdioClient {
    this.stdioClient ??= new StdioClient(this.child);
    return this.stdioClient;
  }

  /** SIGTERM, then SIGKILL if it has not exited within timeoutMs. */
  async stop(timeoutMs = 5000): Promise<ExitInfo> {
    if (this.exitInfo) return this.exitInfo;
    this.child.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const killed = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        this.child.kill('SIGKILL');
        resolve();
      }, timeoutMs);
    });
    await Promise.race([this.exited, killed]);
    clearTimeout(timer);
    const info = await this.exited;
    this.child.stdin?.destroy();
    this.child.stdout?.destroy();
    this.child.stderr?.destroy();
    return info;
  }
}

/** For every suite's afterAll: no server outlives its suite. */
export async function stopAllServers(): Promise<void> {
  await Promise.all([...liveServers].map((server) => server.stop()));
}

/** Runs the bin to its exit (for --help, --version and start-up failures). */
export function runCli(
  args: string[],
  options: { timeoutMs?: number; env?: NodeJS.ProcessEnv; direct?: boolean } = {},
): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string; ms: number }> {
  const started = Date.now();
  const child = options.direct
    ? spawn(BIN, args, { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...options.env } })
    : spawn(process.execPath, [BIN, ...args], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...options.env } });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout!.on('data', (d: Buffer) => out.push(d));
  child.stderr!.on('data', (d: Buffer) => err.push(d));
  const timeoutMs = options.timeoutMs ?? 15_000;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`rkllm-serve ${args.join(' ')} did not exit within ${timeoutMs} ms; stderr: ${Buffer.concat(err).toString().slice(-2000)}`));
    }, timeoutMs);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString(), ms: Date.now() - started });
    });
  });
}

/** The -32700 reply every transport owes a text that is not JSON. */
export function isParseError(message: RpcMessage | undefined): boolean {
  return !!message && message.id === null && message.error?.code === -32700;
}

/** A server error of the project's own table (-32099..-32000). */
export function isServerError(message: RpcMessage | undefined): boolean {
  const code = message?.error?.code;
  return typeof code === 'number' && code <= -32000 && code >= -32099;
}
