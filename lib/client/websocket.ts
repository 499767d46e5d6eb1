// WebSocket (the `ws` package): one JSON text per text frame. The API key goes in the upgrade's
// Authorization header. drop() terminates the socket without a close frame; close() sends one and
// waits (bounded) for the server's.

import type { IncomingMessage } from 'http';
import WebSocket from 'ws';
import { invalidArgument } from '../errors';
import { textOfFrame } from '../framing/websocket-text';
import { ClientError } from './errors';
import { DEFAULT_CLOSE_TIMEOUT_MS } from './line-stream';
import { DEFAULT_CONNECT_TIMEOUT_MS } from './tcp';
import { TransportBase, type ClientTransport } from './transport';

/** Largest frame accepted from the server (replies with logits can be large). */
export const DEFAULT_MAX_FRAME_BYTES = 64 * 1024 * 1024;
/** How much of a refused upgrade's body goes into the error. */
const REFUSAL_BODY_CHARS = 2000;

export interface WebSocketTransportOptions {
  /** ws:// or wss:// with the path ("/" on this server). */
  url: string | URL;
  /** Sent as `Authorization: Bearer <key>` on the upgrade. */
  apiKey?: string;
  headers?: Record<string, string>;
  /** Bound on the upgrade (default 5 s). */
  connectTimeoutMs?: number;
  /** close(): how long the server gets to answer the close frame (default 2 s). */
  closeTimeoutMs?: number;
  maxFrameBytes?: number;
  /** Further options for the `ws` client (TLS settings, an agent, ...). */
  clientOptions?: WebSocket.ClientOptions;
}

export class WebSocketTransport extends TransportBase implements ClientTransport {
  readonly kind = 'websocket' as const;
  readonly pushes = true;
  readonly exchanges = false;
  readonly socket: WebSocket;
  private readonly closeTimeoutMs: number;
  private lastError: Error | undefined;

  private constructor(socket: WebSocket, closeTimeoutMs: number) {
    super();
    this.socket = socket;
    this.closeTimeoutMs = closeTimeoutMs;
    socket.on('message', (data: WebSocket.RawData) => this.deliver(textOfFrame(data)));
    socket.on('error', (error: Error) => {
      this.lastError = error;
      this.report(error);
    });
    socket.on('close', (code: number, reason: Buffer) =>
      this.markClosed({ reason: this.lastError ? 'error' : 'closed', code, detail: reason.toString('utf8'), error: this.lastError }),
    );
  }

  static connect(options: WebSocketTransportOptions): Promise<WebSocketTransport> {
    let url: URL;
    try {
      url = new URL(String(options.url));
    } catch {
      return Promise.reject(invalidArgument('url', `is not a URL: ${String(options.url)}`));
    }
    if (url.protocol !== 'ws:' && url.protocol !== 'wss:') return Promise.reject(invalidArgument('url', `must be ws:// or wss://, not ${url.protocol}//`));
    const timeoutMs = options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    const headers: Record<string, string> = { ...options.clientOptions?.headers, ...options.headers };
    if (options.apiKey !== undefined) headers.authorization = `Bearer ${options.apiKey}`;
    const where = `websocket ${url.href}`;
    return new Promise((resolve, reject) => {
      const socket = new WebSocket(url, {
        // No compression: it costs CPU on both ends for small messages.
        perMessageDeflate: false,
        maxPayload: options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES,
        ...options.clientOptions,
        headers,
        handshakeTimeout: timeoutMs,
      });
      let settled = false;
      const timer = setTimeout(() => fail(new ClientError('CONNECT_FAILED', `${where}: not connected within ${timeoutMs} ms`)), timeoutMs);
      const fail = (error: ClientError): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        reject(error);
        socket.terminate();
      };
      socket.on('error', (error: Error) => fail(new ClientError('CONNECT_FAILED', `${where}: ${error.message}`, { cause: error })));
      // A refused upgrade: its status and body say why (401 wrong key, 503 too many connections).
      socket.once('unexpected-response', (request, response: IncomingMessage) => {
        const status = response.statusCode ?? 0;
        let body = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => {
          if (body.length < REFUSAL_BODY_CHARS) body += chunk;
        });
        const refuse = (): void => {
          fail(new ClientError('CONNECT_FAILED', `${where}: upgrade refused with HTTP ${status}${body ? `: ${body.slice(0, REFUSAL_BODY_CHARS)}` : ''}`, { status, body }));
          request.destroy();
        };
        response.once('end', refuse);
        response.once('error', refuse);
        // The body is a courtesy; a server that never ends it does not hold the caller.
        setTimeout(refuse, Math.min(timeoutMs, 1000)).unref();
      });
      socket.once('open', () => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        socket.removeAllListeners('error');
        socket.removeAllListeners('unexpected-response');
        resolve(new WebSocketTransport(socket, options.closeTimeoutMs ?? DEFAULT_CLOSE_TIMEOUT_MS));
      });
    });
  }

  send(text: string): Promise<void> {
    return this.sendFrame(text);
  }

  /** One text frame of these bytes, as they are (even when they are not valid UTF-8). */
  sendBytes(data: string | Uint8Array): Promise<void> {
    return this.sendFrame(typeof data === 'string' ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    const closed = new Promise<void>((resolve) => this.onClose(() => resolve()));
    this.socket.close(1000);
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise<void>((resolve) => (timer = setTimeout(resolve, this.closeTimeoutMs)));
    await Promise.race([closed, bound]);
    clearTimeout(timer);
    if (!this.closed) {
      this.markClosed({ reason: 'closed', detail: `the server did not answer the close within ${this.closeTimeoutMs} ms` });
      this.socket.terminate();
    }
  }

  drop(): void {
    if (this.closed) return;
    this.markClosed({ reason: 'dropped' });
    this.socket.terminate();
  }

  private sendFrame(data: string | Buffer): Promise<void> {
    if (this.closed || this.socket.readyState !== WebSocket.OPEN) return Promise.reject(new ClientError('CLOSED', 'websocket: the transport is closed'));
    return new Promise((resolve, reject) => {
      this.socket.send(data, { binary: false }, (error) => {
        if (error) reject(new ClientError('SEND_FAILED', `websocket: send failed: ${error.message}`, { cause: error }));
        else resolve();
      });
    });
  }
}

