// HTTP: `POST /` carries one JSON-RPC message or batch; `GET /health` answers readiness (503
// unless requests would be served now) and `GET /livez` liveness (200 whenever the process
// serves). Each request is one Connection.
// - Plain POST: canPush false, so a streaming request answers at once with { stream_id } and its
//   chunks wait for `poll`. The first send() is the response body; a message that earns no reply
//   (a notification, an all-notification batch) gets 204.
// - `Accept: text/event-stream`: canPush true and holdUntilStreamsEnd true. Every send() is one
//   SSE event (`data: <json>\n\n`); handleMessage settles after the last stream the message
//   started has ended (rkllm_run_async included), and the response ends there. A client that goes
//   away mid-stream closes the Connection, which cancels its streams.
// Under /v1, the OpenAI-compatible routes (lib/openai) answer instead: the same body limit, and
// the same models and queues. With config.apiKey set, POST / and /v1 require
// `Authorization: Bearer <key>` (401 otherwise); GET /health and GET /livez stay open for probes,
// and so do the routes' public paths (the web page's files, lib/web: GET / and /web/*).
// Every request first passes the browser protections (web-guard.ts: Host, Origin, CORS; 403 with
// the setting to change), and a POST must carry a JSON content type (415): a page's form or
// text/plain POST never runs. Sockets are counted at accept against limits.maxConnections and
// limits.maxConnectionsPerAddress (the excess gets a 503 and is closed at once), requests are
// bounded in time (http-listener.ts: 408) and bodies by limits.maxMessageBytes (413). Replies go
// through a PeerOutput (peer-output.ts): a reader that stops reading is cut off at
// limits.maxBufferedBytesPerConnection, and a batch reply leaves member by member (chunked, or as
// one SSE event in pieces).

import * as http from 'http';
import type { Connection, OutgoingMessage } from '../rpc/connection';
import { HttpListener } from './http-listener';
import { PeerOutput, onceDrainedOrClosed, type OutputSink } from './peer-output';
import { invalidRequest, messageTooLarge, replyTooLarge, unauthorized } from './replies';
import {
  bindOnce,
  reportClosed,
  settleWithin,
  type ListeningAddress,
  type Transport,
  type TransportContext,
  type TransportStats,
} from './transport';
import { WebGuard, corsHeaders, isJsonContentType, isPreflight, preflightHeaders, type WebSettings } from './web-guard';

const STOP_BOUND_MS = 300;
/** How much of a refused request's path its log line shows. */
const MAX_LOGGED_PATH = 200;

/** The counts GET /health reports of the server behind the transport. */
export interface ServerCounts {
  connections: number;
  streams: number;
  queued: number;
  running: number;
  models: number;
  /** Each loaded model's host process (pid, state, restarts, memory, last failure). */
  hosts?: readonly object[];
  /** Whether requests would be served now: a status other than 'ok' answers 503 (loading, no_model, failed). */
  readiness?: { status: string; loading: readonly object[]; failed: readonly string[] };
}

/** What GET /health reports, besides the engine's own counts. */
export type HealthSource = () => { server: ServerCounts; transports: Record<string, TransportStats>; shuttingDown: boolean };

/**
 * Routes served beside JSON-RPC (the OpenAI API under /v1, Ollama's under /api): whoever answers them implements this.
 * The transport reads the body (bounded) and checks the API key first.
 */
export interface HttpRoutes {
  /** Whether `path` is served here (`method`: the request's, when there is one; `/` is JSON-RPC's for POST only). */
  owns(path: string, method?: string): boolean;
  /** A path served without the API key (the web page's files: the page must load to ask for it). */
  isPublic?(path: string, method?: string): boolean;
  /** Answers one request; `body` is the whole request body ('' for GET). Never throws. */
  handle(request: http.IncomingMessage, response: http.ServerResponse, path: string, body: string): void;
  /** Answers a request that did not carry the API key. */
  refuseUnauthorized(response: http.ServerResponse, path: string): void;
  /** Answers a request the transport refuses itself (a foreign Host or Origin, not JSON, a bad URL), in the routes' own shape. */
  refuse(response: http.ServerResponse, status: number, message: string, code: string, path: string): void;
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
    onceDrained: (callback) => onceDrainedOrClosed(response, callback),
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
    onceDrained: (callback) => onceDrainedOrClosed(response, callback),
  };
}

export class HttpTransport implements Transport {
  readonly name = 'http' as const;

  private readonly context: TransportContext;
  private readonly health: HealthSource;
  private readonly routes: HttpRoutes | undefined;
  private readonly listener: HttpListener;
  private readonly server: http.Server;
  private readonly guard: WebGuard;
  private readonly openConnections = new Set<HttpConnection>();
  private address: ListeningAddress | undefined;
  private nextRequestNumber = 1;
  private cutOff = 0;

  constructor(context: TransportContext, web: WebSettings, health: HealthSource, routes?: HttpRoutes) {
    this.context = context;
    this.health = health;
    this.routes = routes;
    this.guard = new WebGuard(web, context.endpoint.host);
    this.listener = new HttpListener({ transport: this.name, context, web, onRequest: (request, response) => this.route(request, response) });
    this.server = this.listener.server;
  }

  async start(): Promise<ListeningAddress> {
    const { host, port } = this.context.endpoint;
    this.address = await bindOnce(this.server, this.name, host, port, this.context.logger, (bound) =>
      this.server.listen({ host, port }, bound),
    );
    this.guard.bound(this.address.host);
    return this.address;
  }

  stopAccepting(): void {
    this.listener.stopAccepting();
    if (this.server.listening) this.server.close();
    this.server.closeIdleConnections();
  }

  async stop(): Promise<void> {
    this.stopAccepting();
    for (const connection of [...this.openConnections]) this.closeConnection(connection);
    this.server.closeAllConnections();
    for (const socket of this.listener.sockets) socket.destroy();
    await settleWithin(new Promise<void>((resolve) => (this.server.listening ? this.server.close(() => resolve()) : resolve())), STOP_BOUND_MS);
  }

  stats(): TransportStats {
    let bufferedBytes = 0;
    for (const socket of this.listener.sockets) bufferedBytes += socket.writableLength;
    return { connections: this.listener.sockets.size, ...this.listener.counters, cutOff: this.cutOff, bufferedBytes };
  }

  private route(request: http.IncomingMessage, response: http.ServerResponse): void {
    response.on('error', (error) => this.context.logger.debug({ err: error, transport: this.name }, 'http response error'));
    const url = request.url ?? '/';
    const path = url.split('?')[0];
    // What the transport refuses itself on paths no front end owns (403, 401, 404, 405, 413, 415,
    // ...) reaches no request log: it gets its line here, in the same shape.
    let handedOver = false;
    // The routes' own refusals are recorded by their front end (routes.refuse).
    const routed = this.routes?.owns(path, request.method) === true;
    response.once('finish', () => {
      if (handedOver || routed || response.statusCode < 400) return;
      const route = `${request.method ?? '?'} ${path.slice(0, MAX_LOGGED_PATH)}`;
      this.context.logger.warn({ transport: this.name, route, status: String(response.statusCode) }, `${route} ${response.statusCode}`);
    });
    const verdict = this.guard.check(request);
    if (!verdict.allowed) {
      this.refuse(request, response, path, 403, verdict.error.message, 'forbidden', this.context.handler.refusal(verdict.error));
      return;
    }
    if (verdict.corsOrigin !== undefined) {
      if (isPreflight(request)) {
        request.resume();
        response.writeHead(204, preflightHeaders(verdict.corsOrigin, request));
        response.end();
        return;
      }
      for (const [name, value] of Object.entries(corsHeaders(verdict.corsOrigin))) response.setHeader(name, value);
    }
    if (!decodable(url)) {
      const reason = 'the URL has a malformed %-escape';
      this.refuse(request, response, path, 400, reason, 'invalid_url', invalidRequest(reason));
      return;
    }
    if (path === '/health' || path === '/livez') {
      // A probe's 503 says "not ready" every few seconds: not a refusal to log.
      handedOver = request.method === 'GET';
      if (request.method !== 'GET') methodNotAllowed(request, response, 'GET');
      else if (path === '/health') this.answerHealth(response);
      else reply(response, { status: 200, body: { status: 'alive' } });
      return;
    }
    if (this.routes?.owns(path, request.method)) {
      const routes = this.routes;
      if (routes.isPublic?.(path, request.method) !== true && !this.authorized(request)) {
        request.resume();
        routes.refuseUnauthorized(response, path);
        return;
      }
      if (!this.jsonBodyIfPost(request, response, path)) return;
      this.readBody(request, response, (body) => {
        handedOver = true;
        routes.handle(request, response, path, body);
      });
      return;
    }
    if (path === '/') {
      if (request.method !== 'POST') methodNotAllowed(request, response, 'POST');
      else if (!this.authorized(request)) {
        request.resume();
        reply(response, { status: 401, body: unauthorized(this.context.handler, 'send the API key as "Authorization: Bearer <key>"') });
      } else if (this.jsonBodyIfPost(request, response, path)) {
        this.readBody(request, response, (body) => {
          handedOver = true;
          this.dispatch(request, response, body);
        });
      }
      return;
    }
    request.resume();
    reply(response, { status: 404, body: invalidRequest(`no such path: ${path}; JSON-RPC is POST /, OpenAI is /v1, Ollama is /api, the web page is GET /, readiness is GET /health, liveness is GET /livez`) });
  }

  private answerHealth(response: http.ServerResponse): void {
    const { server, transports, shuttingDown } = this.health();
    const readiness = server.readiness;
    const status = shuttingDown ? 'shutting_down' : (readiness?.status ?? 'ok');
    const body = {
      status,
      model_loaded: server.models > 0,
      models: server.models,
      queued: server.queued,
      running: server.running,
      streams: server.streams,
      connections: server.connections,
      ...(server.hosts ? { model_hosts: server.hosts } : {}),
      ...(readiness && readiness.loading.length > 0 ? { loading: readiness.loading } : {}),
      ...(readiness && readiness.failed.length > 0 ? { failed: readiness.failed } : {}),
      transports,
    };
    reply(response, { status: status === 'ok' ? 200 : 503, body });
  }

  private authorized(request: http.IncomingMessage): boolean {
    return this.context.apiKey.admitsHeader(request.headers.authorization);
  }

  /**
   * A POST body is JSON, and says so: the content types a page may POST cross-origin without a
   * preflight (text/plain, forms) are refused with 415 before anything is read or run.
   */
  private jsonBodyIfPost(request: http.IncomingMessage, response: http.ServerResponse, path: string): boolean {
    if (request.method !== 'POST' || isJsonContentType(request.headers['content-type'])) return true;
    const given = request.headers['content-type'] === undefined ? 'none' : `"${request.headers['content-type']}"`;
    const reason = `the body must be sent as Content-Type: application/json (given: ${given})`;
    this.refuse(request, response, path, 415, reason, 'unsupported_media_type', invalidRequest(reason));
    return false;
  }

  /**
   * A refusal before the request is read: in OpenAI's shape under /v1, as a JSON-RPC error
   * elsewhere. The connection closes after it, so a body that keeps coming is not read for long.
   */
  private refuse(
    request: http.IncomingMessage,
    response: http.ServerResponse,
    path: string,
    status: number,
    message: string,
    code: string,
    rpcBody: OutgoingMessage,
  ): void {
    request.resume();
    response.setHeader('connection', 'close');
    if (this.routes?.owns(path)) this.routes.refuse(response, status, message, code, path);
    else reply(response, { status, body: rpcBody });
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
      this.cutOff += 1;
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

/** Whether every %-escape of the URL decodes (a malformed one is the client's error, not ours). */
function decodable(url: string): boolean {
  try {
    decodeURIComponent(url);
    return true;
  } catch {
    return false;
  }
}

function methodNotAllowed(request: http.IncomingMessage, response: http.ServerResponse, allowed: string): void {
  request.resume();
  reply(response, {
    status: 405,
    body: invalidRequest(`${request.method ?? '?'} is not allowed here; use ${allowed}`),
    headers: { allow: allowed },
  });
}
