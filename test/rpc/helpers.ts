// A test client of the engine: an in-memory Connection that records what the server sends
// (round-tripped through JSON, as a transport would), and helpers to wait for replies and
// notifications with a bound. Nothing of the server is mocked.

import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import pino from 'pino';
import type { AbiName } from '../../lib';
import type { Connection, OutgoingMessage } from '../../lib/rpc/connection';
import { createServer, defaultConfig, type RkllmServer, type ServerConfig } from '../../lib/serve';

export const ABIS: AbiName[] = ['1.2', '1.3'];
export const SLOW_MODEL = 'sim:rk3588-qwen2.5-1.5b';

export type Json = Record<string, unknown>;

export interface RpcReply {
  jsonrpc: '2.0';
  id: string | number | null;
  result?: any;
  error?: { code: number; message: string; data?: any };
}

export interface ResultNotification {
  jsonrpc: '2.0';
  method: 'rkllm_result';
  params: {
    stream_id: string;
    request_id: string | number | null;
    seq: number;
    state: number;
    text: string;
    token_id: number;
    perf?: Json;
    error?: { code: number; message: string };
    aborted?: boolean;
    reason?: string;
  };
}

let connectionCounter = 0;

export class MemoryConnection implements Connection {
  readonly id: string;
  readonly transport = 'memory' as const;
  readonly canPush: boolean;
  readonly holdUntilStreamsEnd?: boolean;
  /** Everything sent, in order. */
  readonly received: unknown[] = [];
  /** When false, send() refuses (a peer that stopped reading). */
  accepting = true;
  #waiters: (() => void)[] = [];

  constructor(options: { canPush?: boolean; holdUntilStreamsEnd?: boolean } = {}) {
    this.id = `memory#${++connectionCounter}`;
    this.canPush = options.canPush ?? true;
    this.holdUntilStreamsEnd = options.holdUntilStreamsEnd;
  }

  send(message: OutgoingMessage): boolean {
    if (!this.accepting) return false;
    this.received.push(JSON.parse(JSON.stringify(message)));
    for (const wake of this.#waiters.splice(0)) wake();
    return true;
  }

  /** Waits until `find` returns something from the messages received, for at most timeoutMs. */
  async waitFor<T>(find: (messages: unknown[]) => T | undefined, timeoutMs: number, what: string): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = find(this.received);
      if (found !== undefined) return found;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; received ${JSON.stringify(this.received).slice(0, 500)}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 50));
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  replies(): RpcReply[] {
    return this.received.filter((m): m is RpcReply => typeof m === 'object' && m !== null && !Array.isArray(m) && 'id' in m);
  }

  notifications(streamId?: string): ResultNotification['params'][] {
    return this.received
      .filter((m): m is ResultNotification => typeof m === 'object' && m !== null && (m as Json).method === 'rkllm_result')
      .map((m) => m.params)
      .filter((p) => streamId === undefined || p.stream_id === streamId);
  }
}

let idCounter = 0;

const openClients = new Set<TestClient>();

/** Closes every client a test opened, as their transports would when the peers leave. */
export function closeAllClients(): void {
  for (const client of openClients) client.close();
}

export class TestClient {
  readonly server: RkllmServer;
  readonly connection: MemoryConnection;

  constructor(server: RkllmServer, options: { canPush?: boolean; holdUntilStreamsEnd?: boolean } = {}) {
    this.server = server;
    this.connection = new MemoryConnection(options);
    openClients.add(this);
  }

  sendText(text: string): Promise<void> {
    return this.server.handleMessage(this.connection, text);
  }

  /** Sends a request and waits for the reply with its id. */
  async call(method: string, params?: unknown, timeoutMs = 10_000): Promise<RpcReply> {
    const id = `t${++idCounter}`;
    const message: Json = { jsonrpc: '2.0', id, method };
    if (params !== undefined) message.params = params;
    void this.sendText(JSON.stringify(message));
    return this.replyTo(id, timeoutMs);
  }

  /** The result of a call that must succeed. */
  async ok(method: string, params?: unknown, timeoutMs?: number): Promise<any> {
    const reply = await this.call(method, params, timeoutMs);
    if (reply.error) throw new Error(`${method} failed: ${JSON.stringify(reply.error)}`);
    return reply.result;
  }

  /** The error of a call that must fail. */
  async fails(method: string, params?: unknown, timeoutMs?: number): Promise<NonNullable<RpcReply['error']>> {
    const reply = await this.call(method, params, timeoutMs);
    if (!reply.error) throw new Error(`${method} succeeded: ${JSON.stringify(reply.result).slice(0, 300)}`);
    return reply.error;
  }

  replyTo(id: string | number | null, timeoutMs = 10_000): Promise<RpcReply> {
    return this.connection.waitFor(
      (messages) => messages.find((m): m is RpcReply => typeof m === 'object' && m !== null && !Array.isArray(m) && (m as Json).id === id && ('result' in m || 'error' in m)),
      timeoutMs,
      `the reply to ${String(id)}`,
    );
  }

  /** Waits for the last notification of a stream and returns all of its notifications. */
  async streamEnd(streamId: string, timeoutMs = 10_000): Promise<ResultNotification['params'][]> {
    await this.connection.waitFor(
      () => this.connection.notifications(streamId).find((p) => p.state === 3 || p.perf !== undefined || p.aborted === true),
      timeoutMs,
      `the end of stream ${streamId}`,
    );
    return this.connection.notifications(streamId);
  }

  close(): void {
    openClients.delete(this);
    this.server.connectionClosed(this.connection);
  }
}

export const silentLogger = pino({ level: 'silent' });

export function simConfig(abi: AbiName, overrides: Partial<ServerConfig> = {}): ServerConfig {
  return { ...defaultConfig(), runtime: 'sim', runtimeAbi: abi, logLevel: 'silent', ...overrides };
}

export function startSim(abi: AbiName, overrides: Partial<ServerConfig> = {}): Promise<RkllmServer> {
  return createServer(simConfig(abi, overrides), silentLogger);
}

/** Waits until `condition` holds, checking every 5 ms, for at most timeoutMs. */
export async function waitUntil(condition: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

export function countText(n: number): string {
  return Array.from({ length: n }, (_, i) => String(i + 1)).join(', ');
}

export function prompt(text: string): Json {
  return { rkllm_input: { input_type: 0, prompt_input: text } };
}

export function makeScratchDir(label: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `rkllm-rpc-${label}-`));
}

export function removeScratchDir(dir: string | undefined): void {
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
}
