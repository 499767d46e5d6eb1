// HTTP: every message is one `POST` (to `/` on this server), and its answer is the response.
// - Plain (the default): the body is the one reply (204 for a notification). The server cannot
//   push, so streams answer { stream_id } at once and are read with `poll`.
// - eventStream: `Accept: text/event-stream`; each SSE event is one message (stream chunks, then
//   the reply), and the response ends once the streams the message started have ended.
// send() settles when its response has ended, after every text in it has been reported. A
// response with an error status is reported too (its body is usually a JSON-RPC error with id
// null), and send() then rejects with HTTP_STATUS. drop() destroys every request in flight,
// which the server sees as the client gone (its streams are cancelled).

import * as http from 'http';
import * as https from 'https';
import { invalidArgument } from '../errors';
import { SseParser } from '../framing/sse';
import { ClientError } from './errors';
import { DEFAULT_CLOSE_TIMEOUT_MS } from './line-stream';
import { TransportBase, type ClientTransport, type SendOptions } from './transport';

/** Largest response body (or SSE event) accepted. */
export const DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024;
/** How much of an error response's body the HTTP_STATUS error keeps. */
const ERROR_BODY_CHARS = 64 * 1024;

export interface HttpTransportOptions {
  /** http:// or https://, with the path to POST to ("/" on this server). */
  url: string | URL;
  /** Ask for an event stream (SSE) for every message. */
  eventStream?: boolean;
  /** Sent as `Authorization: Bearer <key>`. */
  apiKey?: string;
  headers?: Record<string, string>;
  /** Default: an agent of the transport's own with keep-alive, destroyed by close()/drop(). */
  agent?: http.Agent | false;
  maxResponseBytes?: number;
  /** close(): how long exchanges in flight get to end (default 2 s). */
  closeTimeoutMs?: number;
}

export class HttpTransport extends TransportBase implements ClientTransport {
  readonly kind = 'http' as const;
  readonly exchanges = true;
  readonly pushes: boolean;
  readonly url: URL;

  private readonly options: HttpTransportOptions;
  private readonly agent: http.Agent | false;
  private readonly ownAgent: boolean;
  private readonly maxResponseBytes: number;
  private readonly inFlight = new Map<http.ClientRequest, Promise<void>>();
  private closing = false;

  constructor(options: HttpTransportOptions) {
    super();
    let url: URL;
    try {
      url = new URL(String(options.url));
    } catch {
      throw invalidArgument('url', `is not a URL: ${String(options.url)}`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw invalidArgument('url', `must be http:// or https://, not ${url.protocol}//`);
    this.url = url;
    this.options = options;
    this.pushes = options.eventStream === true;
    this.maxResponseBytes = options.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES;
    this.ownAgent = options.agent === undefined;
    this.agent = options.agent ?? new (url.protocol === 'https:' ? https.Agent : http.Agent)({ keepAlive: true });
  }

  send(text: string, options: SendOptions = {}): Promise<void> {
    return this.sendBytes(text, options);
  }

  sendBytes(data: string | Uint8Array, options: SendOptions = {}): Promise<void> {
    if (this.closed || this.closing) return Promise.reject(new ClientError('CLOSED', 'http: the transport is closed'));
    if (options.signal?.aborted) return Promise.reject(abortError(options.signal));
    const body = typeof data === 'string' ? Buffer.from(data, 'utf8') : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    const headers: http.OutgoingHttpHeaders = {
      'content-type': 'application/json',
      'content-length': body.length,
      accept: this.pushes ? 'text/event-stream' : 'application/json',
      ...this.options.headers,
    };
    if (this.options.apiKey !== undefined) headers.authorization = `Bearer ${this.options.apiKey}`;
    const module = this.url.protocol === 'https:' ? https : http;
    const request = module.request(this.url, { method: 'POST', headers, agent: this.agent });
    const exchange = new Promise<void>((resolve, reject) => {
      let failure: Error | undefined;
      const abort = (): void => {
        failure = abortError(options.signal);
        request.destroy();
      };
      options.signal?.addEventListener('abort', abort, { once: true });
      const settle = (error?: Error): void => {
        options.signal?.removeEventListener('abort', abort);
        this.inFlight.delete(request);
        if (error) reject(error);
        else resolve();
      };
      request.on('error', (error: Error) => {
        if (failure) settle(failure);
        else if (this.closeInfo?.reason === 'dropped') settle(new ClientError('CLOSED', 'http: the transport was dropped', { cause: error }));
        else settle(new ClientError('SEND_FAILED', `http POST ${this.url.href}: ${error.message}`, { cause: error }));
      });
      request.on('response', (response) => {
        response.on('error', () => undefined);
        const status = response.statusCode ?? 0;
        const eventStream = this.pushes && /^text\/event-stream\b/i.test(String(response.headers['content-type'] ?? ''));
        const cutShort = (): void => {
          if (response.complete) return;
          if (failure) settle(failure);
          else if (this.closeInfo?.reason === 'dropped') settle(new ClientError('CLOSED', 'http: the transport was dropped'));
          else settle(new ClientError('SEND_FAILED', `http POST ${this.url.href}: the response was cut short`));
        };
        response.on('close', cutShort);
        if (eventStream) this.readEvents(response, () => settle());
        else
          this.readBody(response, (text) => {
            if (/\S/.test(text)) this.deliver(text);
            if (status >= 400) settle(new ClientError('HTTP_STATUS', `http POST ${this.url.href}: HTTP ${status}`, { status, body: text.slice(0, ERROR_BODY_CHARS) }));
            else settle();
          });
      });
    });
    // The caller may not wait for this promise (a fire-and-forget send); the failure is still its to see.
    exchange.catch(() => undefined);
    this.inFlight.set(request, exchange);
    request.end(body);
    return exchange;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closing = true;
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise<void>((resolve) => (timer = setTimeout(resolve, this.options.closeTimeoutMs ?? DEFAULT_CLOSE_TIMEOUT_MS)));
    const settled = Promise.all([...this.inFlight.values()].map((exchange) => exchange.catch(() => undefined)));
    await Promise.race([settled, bound]);
    clearTimeout(timer);
    this.markClosed({ reason: 'closed' });
    this.release();
  }

  drop(): void {
    if (this.closed) return;
    this.markClosed({ reason: 'dropped' });
    this.release();
  }

  private release(): void {
    for (const request of [...this.inFlight.keys()]) request.destroy();
    if (this.ownAgent && this.agent) this.agent.destroy();
  }

  private readBody(response: http.IncomingMessage, done: (text: string) => void): void {
    const chunks: Buffer[] = [];
    let size = 0;
    response.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > this.maxResponseBytes) {
        this.report(new ClientError('MESSAGE_TOO_LARGE', `http: a response body of more than ${this.maxResponseBytes} bytes was cut off`));
        response.destroy();
        return;
      }
      chunks.push(chunk);
    });
    response.on('end', () => done(Buffer.concat(chunks, size).toString('utf8')));
  }

  private readEvents(response: http.IncomingMessage, done: () => void): void {
    const parser = new SseParser(this.maxResponseBytes);
    const sink = {
      event: (event: { data: string }) => {
        if (/\S/.test(event.data)) this.deliver(event.data);
      },
      overflow: (seenChars: number) =>
        this.report(new ClientError('MESSAGE_TOO_LARGE', `http: an event of more than ${seenChars} characters was skipped`)),
    };
    response.on('data', (chunk: Buffer) => parser.push(chunk, sink));
    response.on('end', () => {
      parser.end();
      done();
    });
  }
}

function abortError(signal: AbortSignal | undefined): Error {
  const reason: unknown = signal?.reason;
  return reason instanceof ClientError ? reason : new ClientError('ABORTED', 'http: the exchange was aborted', { cause: reason });
}
