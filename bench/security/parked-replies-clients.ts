// The clients of the reply-parking measurement (docs/security/e.md) and of its reliability test:
// attackers that send one large batch and then never read a byte of the reply, on TCP, HTTP and
// WebSocket, and a control client that times cheap requests meanwhile. Plain sockets throughout,
// so nothing on the client side reads on the attacker's behalf.

import { randomBytes } from 'crypto';
import * as net from 'net';

export const HOST = '127.0.0.1';
export type AttackTransport = 'tcp' | 'http' | 'websocket';

/** A batch of `members` rkllm_list_functions requests, as one JSON text. */
export function listFunctionsBatch(members: number): string {
  const batch = Array.from({ length: members }, (_, index) => ({ jsonrpc: '2.0', id: index, method: 'rkllm_list_functions' }));
  return JSON.stringify(batch);
}

/** One masked text frame, as a WebSocket client must send it. */
function maskedTextFrame(text: string): Buffer {
  const payload = Buffer.from(text, 'utf8');
  const mask = randomBytes(4);
  let header: Buffer;
  if (payload.length < 126) {
    header = Buffer.from([0x81, 0x80 | payload.length]);
  } else if (payload.length < 65_536) {
    header = Buffer.alloc(4);
    header[0] = 0x81;
    header[1] = 0x80 | 126;
    header.writeUInt16BE(payload.length, 2);
  } else {
    header = Buffer.alloc(10);
    header[0] = 0x81;
    header[1] = 0x80 | 127;
    header.writeBigUInt64BE(BigInt(payload.length), 2);
  }
  for (let index = 0; index < payload.length; index++) payload[index] ^= mask[index & 3];
  return Buffer.concat([header, mask, payload]);
}

/** What an attacker writes: the message in the transport's framing (and the upgrade for WebSocket). */
function attackBytes(transport: AttackTransport, message: string): Buffer {
  if (transport === 'tcp') return Buffer.from(message + '\n');
  if (transport === 'http') {
    const body = Buffer.from(message);
    const head = `POST / HTTP/1.1\r\nHost: ${HOST}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`;
    return Buffer.concat([Buffer.from(head), body]);
  }
  const key = randomBytes(16).toString('base64');
  const upgrade = `GET / HTTP/1.1\r\nHost: ${HOST}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`;
  return Buffer.concat([Buffer.from(upgrade), maskedTextFrame(message)]);
}

export interface ParkedClient {
  /** Whether the server has closed this connection (cut it off). */
  readonly closed: boolean;
  destroy(): void;
}

/**
 * Connects, sends `message` `times` times, and never reads: no 'data' listener, so Node stops
 * reading once its small read buffer is full and the kernel's buffers fill up behind it.
 */
export function parkReply(transport: AttackTransport, port: number, message: string, times = 1, timeoutMs = 5000): Promise<ParkedClient> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: HOST, port });
    const state = { closed: false };
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`${transport}: no connection within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.removeAllListeners('error');
      socket.on('error', () => undefined);
      socket.once('close', () => (state.closed = true));
      // HTTP takes one request per message; the others repeat on the same connection.
      const bytes = attackBytes(transport, message);
      const again = transport === 'websocket' ? maskedTextFrame(message) : bytes;
      socket.write(bytes);
      for (let round = 1; round < times; round++) socket.write(again);
      resolve({
        get closed() {
          return state.closed;
        },
        destroy: () => socket.destroy(),
      });
    });
  });
}

export interface ControlTimings {
  /** Milliseconds per answered request, in the order sent. */
  latenciesMs: number[];
  /** Requests not answered within the per-request bound. */
  unanswered: number;
}

/** Value at quantile q (0..1) of the numbers, by the nearest-rank method. */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

/**
 * A TCP client that sends `method` every `intervalMs` for `durationMs`, whether or not earlier
 * ones were answered (open loop: a stall of the server delays every request sent during it, as
 * it would for real clients), and times each answer. Requests unanswered `graceMs` after the last
 * one was sent are counted as such.
 */
export function timeControlRequests(port: number, durationMs: number, intervalMs = 10, method = 'rkllm_get_constants', graceMs = 10_000): Promise<ControlTimings> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: HOST, port });
    const latenciesMs: number[] = [];
    const sentAt = new Map<number, number>();
    let pending = '';
    let nextId = 1;
    let ticker: NodeJS.Timeout | undefined;
    let grace: NodeJS.Timeout | undefined;
    const finish = (): void => {
      if (ticker) clearInterval(ticker);
      if (grace) clearTimeout(grace);
      socket.destroy();
      resolve({ latenciesMs, unanswered: sentAt.size });
    };
    const start = (): void => {
      const endAt = Date.now() + durationMs;
      ticker = setInterval(() => {
        if (Date.now() >= endAt) {
          clearInterval(ticker);
          grace = setTimeout(finish, graceMs);
          if (sentAt.size === 0) finish();
          return;
        }
        const id = nextId++;
        sentAt.set(id, performance.now());
        socket.write(JSON.stringify({ jsonrpc: '2.0', id, method }) + '\n');
      }, intervalMs);
    };
    socket.setNoDelay(true);
    socket.once('error', reject);
    socket.on('data', (data: Buffer) => {
      pending += data.toString('utf8');
      let newline: number;
      while ((newline = pending.indexOf('\n')) !== -1) {
        const line = pending.slice(0, newline);
        pending = pending.slice(newline + 1);
        const reply = JSON.parse(line) as { id?: unknown };
        const started = typeof reply.id === 'number' ? sentAt.get(reply.id) : undefined;
        if (started === undefined) continue;
        sentAt.delete(reply.id as number);
        latenciesMs.push(performance.now() - started);
        if (grace && sentAt.size === 0) finish();
      }
    });
    socket.once('connect', start);
  });
}
