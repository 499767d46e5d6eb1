// The Node http.Server under both HTTP ports (HTTP, and WebSocket before the upgrade): sockets are
// admitted at accept (admission.ts) and the excess closed at once with a 503; a request must send
// its headers within headersTimeoutMs and all of itself within bodyTimeoutMs, and an idle
// keep-alive connection is closed after idleTimeoutMs; a request Node's parser gives up on gets
// the status that says why (408 too slow, 413 chunk extensions too large, 431 headers too large,
// 400 otherwise) with a JSON-RPC error body, and its socket is closed.

import * as http from 'http';
import type { Socket } from 'net';
import type { Duplex } from 'stream';
import { RkllmError } from '../errors';
import type { OutgoingMessage } from '../rpc/connection';
import { Admission } from './admission';
import { invalidRequest, serialize } from './replies';
import type { TransportContext } from './transport';
import type { WebSettings } from './web-guard';

/** Bounds on how often Node looks for requests past their timeouts (30 s by default). */
const MIN_CHECK_INTERVAL_MS = 25;
const MAX_CHECK_INTERVAL_MS = 500;

export interface HttpListenerOptions {
  readonly transport: 'http' | 'websocket';
  readonly context: TransportContext;
  readonly web: WebSettings;
  readonly onRequest: (request: http.IncomingMessage, response: http.ServerResponse) => void;
}

export class HttpListener {
  readonly server: http.Server;
  readonly admission: Admission;
  /** Sockets admitted and still open. */
  readonly sockets = new Set<Socket>();
  readonly counters = { accepted: 0, refused: 0 };
  private accepting = true;
  /** The responses not yet finished on each socket: once one has sent its head, no status line may follow. */
  private readonly responses = new WeakMap<Duplex, Set<http.ServerResponse>>();

  constructor(private readonly options: HttpListenerOptions) {
    const { web, context } = options;
    const headersTimeout = web.headersTimeoutMs;
    // Node measures requestTimeout from the same start as headersTimeout and wants it no shorter.
    const requestTimeout = Math.max(web.bodyTimeoutMs, headersTimeout);
    const checkEvery = Math.floor(Math.min(headersTimeout, requestTimeout) / 4);
    this.server = http.createServer(
      {
        headersTimeout,
        requestTimeout,
        connectionsCheckingInterval: Math.min(MAX_CHECK_INTERVAL_MS, Math.max(MIN_CHECK_INTERVAL_MS, checkEvery)),
      },
      (request, response) => {
        this.track(request.socket, response);
        options.onRequest(request, response);
      },
    );
    this.server.keepAliveTimeout = web.idleTimeoutMs;
    this.admission = new Admission(options.transport, context.limits);
    this.server.on('connection', (socket: Socket) => this.admit(socket));
    this.server.on('clientError', (error: NodeJS.ErrnoException, socket: Duplex) => this.answerClientError(error, socket));
  }

  stopAccepting(): void {
    this.accepting = false;
  }

  private admit(socket: Socket): void {
    socket.setNoDelay(true);
    const { context, transport } = this.options;
    const refusal = this.accepting ? this.admission.admit(socket) : new RkllmError('the server is shutting down', 'SHUTTING_DOWN');
    if (refusal !== undefined) {
      this.counters.refused += 1;
      context.logger.debug({ transport, remote: socket.remoteAddress }, `${transport} connection refused: ${refusal.message}`);
      refuseSocket(socket, 503, context.handler.refusal(refusal));
      return;
    }
    this.counters.accepted += 1;
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
  }

  private track(socket: Duplex, response: http.ServerResponse): void {
    let open = this.responses.get(socket);
    if (open === undefined) this.responses.set(socket, (open = new Set()));
    open.add(response);
    response.once('close', () => open.delete(response));
  }

  private answerClientError(error: NodeJS.ErrnoException, socket: Duplex): void {
    const { web, transport, context } = this.options;
    const headSent = [...(this.responses.get(socket) ?? [])].some((response) => response.headersSent);
    if (socket.writable && !headSent) {
      const [status, reason] = clientErrorStatus(error.code, web);
      refuseSocket(socket, status, invalidRequest(reason));
    } else socket.destroy();
    context.logger.debug({ err: error, transport }, `${transport} client error`);
  }
}

function clientErrorStatus(code: string | undefined, web: WebSettings): [number, string] {
  switch (code) {
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return [
        408,
        `the request was not received in time: headers within ${web.headersTimeoutMs} ms, the whole request within ` +
          `${Math.max(web.bodyTimeoutMs, web.headersTimeoutMs)} ms (--headers-timeout, --body-timeout)`,
      ];
    case 'HPE_HEADER_OVERFLOW':
      return [431, `the request headers are larger than ${http.maxHeaderSize} bytes`];
    case 'HPE_CHUNK_EXTENSIONS_OVERFLOW':
      return [413, 'the chunk extensions of the request body are too large'];
    default:
      return [400, `malformed HTTP request${code === undefined ? '' : ` (${code})`}`];
  }
}

/**
 * Writes a whole HTTP response straight to the socket and closes it at once: for requests
 * refused before (or instead of) Node's response machinery. The bytes are handed to the kernel
 * before the close, so a client that reads gets them.
 */
export function refuseSocket(socket: Duplex, status: number, body: OutgoingMessage, headers: Record<string, string> = {}): void {
  socket.on('error', () => undefined);
  if (socket.writable) {
    const text = serialize(body);
    const extra = Object.entries(headers)
      .map(([name, value]) => `${name}: ${value}\r\n`)
      .join('');
    socket.write(
      `HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? 'Error'}\r\nConnection: close\r\nContent-Type: application/json\r\n` +
        `Content-Length: ${Buffer.byteLength(text)}\r\n${extra}\r\n${text}`,
    );
  }
  socket.destroy();
}
