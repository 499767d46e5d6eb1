// HTTP: `POST /` carries one JSON-RPC message or batch; `GET /health` answers readiness. Each
// request is one Connection.
// - Plain POST: canPush false, so a streaming request answers at once with { stream_id } and its
//   chunks wait for `poll`. The first send() is the response body; a message that earns no reply
//   (a notification, an all-notification batch) gets 204.
// - `Accept: text/event-stream`: canPush true and holdUntilStreamsEnd true. Every send() is one
//   SSE event (`data: <json>\n\n`); handleMessage settles after the last stream the message
//   started has ended (rkllm_run_async included), and the response ends there. A client that goes
//   away mid-stream closes the Connection, which cancels its streams.
// Under /v1, the OpenAI-compatible routes (lib/openai) answer instead: the same body limit, and
// the same models and queues. With config.apiKey set, POST / and /v1 require
// `Authorization: Bearer <key>` (401 otherwise); GET /health stays open for readiness probes.
// Keep-alive is Node's default. Sockets are bounded by limits.maxConnections (extra ones get a
// polite 503), bodies by limits.maxMessageBytes (413). Replies go through a PeerOutput
// (peer-output.ts): a reader that stops reading is cut off at limits.maxBufferedBytesPerConnection,
// and a batch reply leaves member by member (chunked, or as one SSE event in pieces).

import * as http from 'http';
import type { Socket } from 'net';
import type { Connection, OutgoingMessage } from '../rpc/connection';
import { PeerOutput, type OutputSink } from './peer-output';
import { invalidRequest, messageTooLarge, replyTooLarge, tooManyConnections, unauthorized } from './replies';
import {
  bindOnce,
  reportClosed,
  settleWithin,
  type ListeningAddress,
  type Transport,
  type TransportContext,
  type TransportStats,
} from './transport';

const STOP_BOUND_MS = 300;

/** The counts GET /health reports of the server behind the transport. */
export interface ServerCounts {
  connections: number;
  streams: number;
  queued: number;
  running: number;
  models: number;
}

/** What GET /health reports, besides the engine's own counts. */
export type HealthSource = () => { server: ServerCounts; transports: Record<string, TransportStats>; shuttingDown: boolean };

/**
 * Routes served beside JSON-RPC (the OpenAI API under /v1): whoever answers them implements this.
 * The transport reads the body (bounded) and checks the API key first.
 */
export interface HttpRoutes {
  /** Whether `path` is served here. */
  owns(path: string): boolean;
  /** Answers one request; `body` is the whole request body ('' for GET). Never throws. */
  handle(request: http.IncomingMessage, response: http.ServerResponse, path: string, body: string): void;
  /** Answers a request that did not carry the API key. */
  refuseUnauthorized(response: http.ServerResponse): void;
}

type Reply = { status: number; body: OutgoingMessage | Record<string, unknown>; headers?: http.OutgoingHttpHeaders };

class HttpConnection implements Connection {
  readonly transport = 'http' as const;
  readonly id: string;
  readonly canPush: boolean;
  readonly holdUntilStreamsEnd: boolean;
  readonly output: PeerOutput;
  sentCount = 0;
  closed = false;

  constructor(
    id: string,
    private readonly response: http.ServerResponse,
    private readonly streaming: boolean,
    context: TransportContext,
    onCutOff: (connection: HttpConnection, why: string) => void,
  ) {
    this.id = id;
    this.canPush = streaming;
    this.holdUntilStreamsEnd = streaming;
    this.output = new PeerOutput({
      sink: streaming ? eventStreamOutput(response) : bodyOutput(response),
      limitBytes: context.limits.maxBufferedBytesPerConnection,
      tooLarge: (requestId, bytes, limit) => replyTooLarge(context.handler, requestId, bytes, limit),
      cutOff: (why) => onCutOff(this, why),
    });
  }

  send(message: OutgoingMessage): boolean {
    return this.sendAll([message]);
  }

  /** An event stream takes a batch (a runtime batch of tokens) as one write of several events. */
  sendAll(messages: readonly OutgoingMessage[]): boolean {
    if (this.closed || this.response.destroyed) return false;
    if (!this.streaming) {
      // A plain request has one body; the engine sends it once.
      if (this.sentCount > 0) return false;
      this.sentCount = 1;
      return this.output.send(messages.slice(0, 1)) && messages.length === 1;
    }
    this.sentCount += messages.length;
    return this.output.send(messages);
  }
}

/** A plain response: the one message is the body; a batch reply goes out chunked, member by member. */
function bodyOutput(response: http.ServerResponse): OutputSink {
  return {
    buffered: () => response.writableLength,
    writeMessages: (texts) => writeJson(response, 200, texts[0]),
    writePiece: (text, first, last) => {
      if (first) response.writeHead(200, { 'content-type': 'application/json' });
      const more = response.write(text);
      if (last) response.end();
      return more;
    },
    onceDrained: (callback) => onceResponseDrained(response, callback),
  };
}

/** An SSE response: one `data:` event per message; a batch reply is one event written in pieces. */
function eventStreamOutput(response: http.ServerResponse): OutputSink {
  return {
    buffered: () => response.writableLength,
    writeMessages: (texts) => {
      let text = '';
      for (const message of texts) text += `data: ${message}\n\n`;
      response.write(text);
    },
    writePiece: (text, first, last) => response.write(`${first ? 'data: ' : ''}${text}${last ? '\n\n' : ''}`),
    onceDrained: (callback) => onceResponseDrained(response, callback),
  };
}

function onceResponseDrained(response: http.ServerResponse, callback: () => void): () => void {
  if (response.destroyed) {
    process.nextTick(callback);
    return () => undefined;
  }
  response.once('drain', callback);
  response.once('close', callback);
  return () => {
    response.off('drain', callback);
    response.off('close', callback);
  };
}

export class HttpTransport implements Transport {
  readonly name = 'http' as const;

  private readonly context: TransportContext;
  private readonly health: HealthSource;
  private readonly routes: HttpRoutes | undefined;
  private readonly server: http.Server;
  private readonly sockets = new Set<Socket>();
  /** Sockets over the bound: their requests get 503 and the socket closes. */
  private readonly refusedSockets = new WeakSet<Socket>();
  private readonly openConnections = new Set<HttpConnection>();
  private address: ListeningAddress | undefined;
  private accepting = true;
  private nextRequestNumber = 1;
  private counters = { accepted: 0, refused: 0, cutOff: 0 };

  constructor(context: TransportContext, health: HealthSource, routes?: HttpRoutes) {
    this.context = context;
    this.health = health;
    this.routes = routes;
    this.server = http.createServer((request, response) => this.route(request, response));
    this.server.on('connection', (socket: Socket) => this.track(socket));
    this.server.on('clientError', (error, socket) => {
      // Malformed HTTP: answer 400 if the socket can still take it, never throw.
      if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      else socket.destroy();
      context.logger.debug({ err: error, transport: this.name }, 'http client error');
    });
  }

  async start(): Promise<ListeningAddress> {
    const { host, port } = this.context.endpoint;
    this.address = await bindOnce(this.server, this.name, host, port, this.context.logger, (bound) =>
      this.server.listen({ host, port }, bound),
    );
    return this.address;
  }

  stopAccepting(): void {
    this.accepting = false;
    if (this.server.listening) this.server.close();
    this.server.closeIdleConnections();
  }

  async stop(): Promise<void> {
    this.stopAccepting();
    for (const connection of [...this.openConnections]) this.closeConnection(connection);
    this.server.closeAllConnections();
    for (const socket of this.sockets) socket.destroy();
    await settleWithin(new Promise<void>((resolve) => (this.server.listening ? this.server.close(() => resolve()) : resolve())), STOP_BOUND_MS);
  }

  stats(): TransportStats {
    let bufferedBytes = 0;
    for (const socket of this.sockets) bufferedBytes += socket.writableLength;
    return { connections: this.sockets.size, ...this.counters, bufferedBytes };
  }

  private track(socket: Socket): void {
    socket.setNoDelay(true);
    if (!this.accepting || this.sockets.size >= this.context.limits.maxConnections) {
      this.counters.refused += 1;
      this.refusedSockets.add(socket);
      return;
    }
    this.counters.accepted += 1;
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
  }

  private route(request: http.IncomingMessage, response: http.ServerResponse): void {
    response.on('error', (error) => this.context.logger.debug({ err: error, transport: this.name }, 'http response error'));
    if (this.refusedSockets.has(request.socket)) {
      request.resume();
      reply(response, { status: 503, body: tooManyConnections(this.context.handler, this.name, this.context.limits.maxConnections), headers: { connection: 'close' } });
      return;
    }
    const path = (request.url ?? '/').split('?')[0];
    if (path === '/health') {
      if (request.method === 'GET') this.answerHealth(response);
      else methodNotAllowed(request, response, 'GET');
      return;
    }
    if (this.routes?.owns(path)) {
      const routes = this.routes;
      if (!this.authorized(request)) {
        request.resume();
        routes.refuseUnauthorized(response);
        return;
      }
      this.readBody(request, response, (body) => routes.handle(request, response, path, body));
      return;
    }
    if (path === '/') {
      if (request.method !== 'POST') methodNotAllowed(request, response, 'POST');
      else if (!this.authorized(request)) {
        request.resume();
        reply(response, { status: 401, body: unauthorized(this.context.handler, 'send the API key as "Authorization: Bearer <key>"') });
      } else this.readBody(request, response, (body) => this.dispatch(request, response, body));
      return;
    }
    request.resume();
    reply(response, { status: 404, body: invalidRequest(`no such path: ${path}; JSON-RPC is POST /, OpenAI is /v1, readiness is GET /health`) });
  }

  private answerHealth(response: http.ServerResponse): void {
    const { server, transports, shuttingDown } = this.health();
    const body = {
      status: shuttingDown ? 'shutting_down' : 'ok',
      model_loaded: server.models > 0,
      models: server.models,
      queued: server.queued,
      running: server.running,
      streams: server.streams,
      connections: server.connections,
      transports,
    };
    reply(response, { status: shuttingDown ? 503 : 200, body });
  }

  private authorized(request: http.IncomingMessage): boolean {
    return this.context.apiKey.admitsHeader(request.headers.authorization);
  }

  /** The whole body, bounded by limits.maxMessageBytes (413 beyond it). */
  private readBody(request: http.IncomingMessage, response: http.ServerResponse, onBody: (body: string) => void): void {
    const limit = this.context.limits.maxMessageBytes;
    const declared = Number(request.headers['content-length']);
    if (Number.isFinite(declared) && declared > limit) {
      this.refuseBody(request, response, limit);
      return;
    }
    const chunks: Buffer[] = [];
    let received = 0;
    let refused = false;
    request.on('data', (chunk: Buffer) => {
      if (refused) return;
      received += chunk.length;
      if (received > limit) {
        refused = true;
        chunks.length = 0;
        this.refuseBody(request, response, limit);
        return;
      }
      chunks.push(chunk);
    });
    request.on('end', () => {
      if (!refused) onBody(Buffer.concat(chunks, received).toString('utf8'));
    });
  }

  private refuseBody(request: http.IncomingMessage, response: http.ServerResponse, limit: number): void {
    // The rest of the body is not read: the socket closes after the 413.
    request.pause();
    reply(response, { status: 413, body: messageTooLarge(this.context.handler, limit, 'the request body'), headers: { connection: 'close' } });
    response.once('finish', () => request.socket.destroySoon());
  }

  private dispatch(request: http.IncomingMessage, response: http.ServerResponse, body: string): void {
    const streaming = /\btext\/event-stream\b/i.test(request.headers.accept ?? '');
    const remote = `${request.socket.remoteAddress ?? '?'}:${request.socket.remotePort ?? 0}`;
    const connection = new HttpConnection(`http#${this.nextRequestNumber++} ${remote}`, response, streaming, this.context, (cut, why) => {
      this.counters.cutOff += 1;
      this.context.logger.warn({ transport: this.name, connection: cut.id }, `${cut.id}: cut off, ${why}`);
      this.closeConnection(cut, true);
      response.destroy();
    });
    this.openConnections.add(connection);
    if (streaming) {
      response.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache',
        // Reverse proxies (nginx) must not hold events back.
        'x-accel-buffering': 'no',
      });
      response.flushHeaders();
    }
    // The client went away before the response was complete: its requests are cancelled.
    response.once('close', () => this.closeConnection(connection));

    this.context.handler
      .handleMessage(connection, body)
      .catch((error: unknown) => this.context.logger.error({ err: error, connection: connection.id }, 'handleMessage rejected'))
      .finally(() => {
        // After the last of the reply has been written (a batch reply may still be leaving).
        connection.output.end(() => {
          if (!response.destroyed && !response.writableEnded) {
            if (streaming) response.end();
            else if (connection.sentCount === 0) {
              response.writeHead(204);
              response.end();
            }
          }
          this.closeConnection(connection);
        });
      });
  }

  private closeConnection(connection: HttpConnection, deferNotice = false): void {
    if (connection.closed) return;
    connection.closed = true;
    connection.output.close();
    this.openConnections.delete(connection);
    reportClosed(this.context, connection, deferNotice);
  }

}

function writeJson(response: http.ServerResponse, status: number, text: string, headers: http.OutgoingHttpHeaders = {}): void {
  response.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  response.end(text);
}

function reply(response: http.ServerResponse, { status, body, headers }: Reply): void {
  if (response.headersSent || response.destroyed) return;
  writeJson(response, status, JSON.stringify(body), headers);
}

function methodNotAllowed(request: http.IncomingMessage, response: http.ServerResponse, allowed: string): void {
  request.resume();
  reply(response, {
    status: 405,
    body: invalidRequest(`${request.method ?? '?'} is not allowed here; use ${allowed}`),
    headers: { allow: allowed },
  });
}
