// WebSocket (the ws package) on path '/': one JSON text per text frame, one Connection per socket.
// A binary frame gets an Invalid Request error and the connection stays. A frame over
// limits.maxMessageBytes is refused by ws itself (maxPayload), which closes with 1009 (message too
// big): the frame cannot be skipped without reading it. Peers are pinged every PING_INTERVAL_MS
// and one that has not answered the previous ping is terminated. A peer that lets more than
// limits.maxBufferedBytesPerConnection pile up unread is closed with 1008 (and terminated if it
// does not take the close either); its output goes through a PeerOutput (peer-output.ts), which
// checks the bound before every frame and sends a batch reply as one message in fragments, one
// per member. Sockets are counted at accept, before any upgrade, against limits.maxConnections
// and limits.maxConnectionsPerAddress (the excess gets a 503 and is closed at once); the upgrade
// request must arrive within the headers timeout (408) and pass the browser protections of
// web-guard.ts (a foreign Host or Origin gets 403).

import type * as http from 'http';
import type { Duplex } from 'stream';
import WebSocket, { WebSocketServer } from 'ws';
import { RkllmError } from '../errors';
import { textOfFrame } from '../framing/websocket-text';
import type { Connection, OutgoingMessage } from '../rpc/connection';
import { HttpListener, refuseSocket } from './http-listener';
import { PeerOutput, onceDrainedOrClosed, type OutputSink } from './peer-output';
import { invalidRequest, replyTooLarge, serialize, unauthorized } from './replies';
import {
  formatHostPort,
  bindOnce,
  reportClosed,
  settleWithin,
  type ListeningAddress,
  type Transport,
  type TransportContext,
  type TransportStats,
} from './transport';
import { WebGuard, type WebSettings } from './web-guard';

export const PING_INTERVAL_MS = 30_000;
/** A peer closed for not reading gets this long to take the close frame before it is terminated. */
const CLOSE_GRACE_MS = 1000;
const STOP_BOUND_MS = 300;
const POLICY_VIOLATION = 1008;
const GOING_AWAY = 1001;

class WebSocketPeer implements Connection {
  readonly transport = 'websocket' as const;
  readonly canPush = true;
  readonly id: string;
  readonly socket: WebSocket;
  readonly output: PeerOutput;
  answeredPing = true;
  closed = false;

  constructor(
    id: string,
    socket: WebSocket,
    /** The TCP socket under the WebSocket: corked around a burst so its frames leave in one write. */
    tcp: Duplex,
    context: TransportContext,
    onCutOff: (peer: WebSocketPeer, why: string) => void,
  ) {
    this.id = id;
    this.socket = socket;
    this.output = new PeerOutput({
      sink: frameOutput(socket, tcp),
      limitBytes: context.limits.maxBufferedBytesPerConnection,
      tooLarge: (requestId, bytes, limit) => replyTooLarge(context.handler, requestId, bytes, limit),
      cutOff: (why) => onCutOff(this, why),
      // A peer whose output waits is not read meanwhile: it cannot queue more work than it takes.
      backpressure: (waiting) => (waiting ? socket.pause() : socket.resume()),
    });
  }

  send(message: OutgoingMessage): boolean {
    return this.sendAll([message]);
  }

  /** A batch of messages (a runtime batch of tokens): one frame each, one write for all. */
  sendAll(messages: readonly OutgoingMessage[]): boolean {
    if (this.closed || this.socket.readyState !== WebSocket.OPEN) return false;
    return this.output.send(messages);
  }
}

/** One text frame per message; a batch reply is one message sent as fragments, one per member. */
function frameOutput(socket: WebSocket, tcp: Duplex): OutputSink {
  return {
    buffered: () => socket.bufferedAmount,
    writeMessages: (texts) => {
      if (texts.length === 1) {
        socket.send(texts[0]);
        return;
      }
      tcp.cork();
      try {
        for (const text of texts) socket.send(text);
      } finally {
        tcp.uncork();
      }
    },
    writePiece: (text, _first, last) => {
      socket.send(text, { fin: last });
      return !tcp.writableNeedDrain;
    },
    onceDrained: (callback) => onceDrainedOrClosed(tcp, callback),
  };
}

export class WebSocketTransport implements Transport {
  readonly name = 'websocket' as const;

  private readonly context: TransportContext;
  private readonly listener: HttpListener;
  private readonly httpServer: http.Server;
  private readonly guard: WebGuard;
  private readonly wss: WebSocketServer;
  private readonly peers = new Set<WebSocketPeer>();
  private address: ListeningAddress | undefined;
  private accepting = true;
  private pingTimer: NodeJS.Timeout | undefined;
  private nextPeerNumber = 1;
  private counters = { accepted: 0, refused: 0, cutOff: 0 };

  constructor(context: TransportContext, web: WebSettings) {
    this.context = context;
    this.guard = new WebGuard(web, context.endpoint.host);
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: context.limits.maxMessageBytes,
      perMessageDeflate: false,
      clientTracking: false,
    });
    this.listener = new HttpListener({
      transport: this.name,
      context,
      web,
      onRequest: (request, response) => {
        request.resume();
        const body = serialize(invalidRequest('this port speaks WebSocket only; open ws://host:port/'));
        response.writeHead(426, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), upgrade: 'websocket' });
        response.end(body);
      },
    });
    this.httpServer = this.listener.server;
    this.httpServer.on('upgrade', (request: http.IncomingMessage, socket: Duplex, head: Buffer) => this.upgrade(request, socket, head));
  }

  async start(): Promise<ListeningAddress> {
    const { host, port } = this.context.endpoint;
    this.address = await bindOnce(this.httpServer, this.name, host, port, this.context.logger, (bound) =>
      this.httpServer.listen({ host, port }, bound),
    );
    this.guard.bound(this.address.host);
    this.pingTimer = setInterval(() => this.pingAll(), PING_INTERVAL_MS);
    this.pingTimer.unref();
    return this.address;
  }

  stopAccepting(): void {
    this.accepting = false;
    this.listener.stopAccepting();
    if (this.httpServer.listening) this.httpServer.close();
  }

  async stop(): Promise<void> {
    this.stopAccepting();
    if (this.pingTimer !== undefined) clearInterval(this.pingTimer);
    for (const peer of [...this.peers]) {
      this.forget(peer);
      // A close frame if the peer can take it now; the socket goes either way.
      if (peer.socket.readyState === WebSocket.OPEN && peer.socket.bufferedAmount === 0) peer.socket.close(GOING_AWAY, 'server shutting down');
      peer.socket.terminate();
    }
    this.httpServer.closeAllConnections();
    await settleWithin(
      new Promise<void>((resolve) => (this.httpServer.listening ? this.httpServer.close(() => resolve()) : resolve())),
      STOP_BOUND_MS,
    );
  }

  stats(): TransportStats {
    let bufferedBytes = 0;
    for (const peer of this.peers) bufferedBytes += peer.socket.bufferedAmount;
    // Refusals at accept (over a bound) and at upgrade (shutting down) are counted alike.
    return { connections: this.peers.size, ...this.counters, refused: this.counters.refused + this.listener.counters.refused, bufferedBytes };
  }

  private upgrade(request: http.IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => undefined);
    const path = (request.url ?? '/').split('?')[0];
    if (path !== '/') {
      rejectUpgrade(socket, 404, invalidRequest(`no WebSocket endpoint at ${path}; use /`));
      return;
    }
    const verdict = this.guard.check(request);
    if (!verdict.allowed) {
      rejectUpgrade(socket, 403, this.context.handler.refusal(verdict.error));
      return;
    }
    if (!this.context.apiKey.admitsHeader(request.headers.authorization)) {
      rejectUpgrade(socket, 401, unauthorized(this.context.handler, 'send the API key as "Authorization: Bearer <key>" on the upgrade request'));
      return;
    }
    if (!this.accepting) {
      this.counters.refused += 1;
      rejectUpgrade(socket, 503, this.context.handler.refusal(new RkllmError('the server is shutting down', 'SHUTTING_DOWN')));
      return;
    }
    // The socket was counted at accept (HttpListener): the upgrade takes no further slot.
    this.wss.handleUpgrade(request, socket, head, (ws) => this.admit(ws, request));
  }

  private admit(ws: WebSocket, request: http.IncomingMessage): void {
    const { handler, logger } = this.context;
    this.counters.accepted += 1;
    const remote = formatHostPort(request.socket.remoteAddress ?? '?', request.socket.remotePort ?? 0);
    const peer = new WebSocketPeer(`websocket#${this.nextPeerNumber++} ${remote}`, ws, request.socket, this.context, (cut, why) => this.cutOff(cut, why));
    this.peers.add(peer);
    ws.on('message', (data: WebSocket.RawData, isBinary: boolean) => {
      if (peer.closed) return;
      if (isBinary) {
        peer.send(invalidRequest('binary frames are not accepted; send each JSON-RPC message as a text frame'));
        return;
      }
      handler
        .handleMessage(peer, textOfFrame(data))
        .catch((error: unknown) => logger.error({ err: error, connection: peer.id }, 'handleMessage rejected'));
    });
    ws.on('pong', () => {
      peer.answeredPing = true;
    });
    ws.on('error', (error: Error) => {
      // ws closes the socket itself after an error (1009 for an oversize frame, 1007 for bad UTF-8).
      logger.debug({ err: error, connection: peer.id }, 'websocket error');
    });
    ws.on('close', () => this.forget(peer));
    logger.debug({ transport: this.name, connection: peer.id }, 'websocket opened');
  }

  private cutOff(peer: WebSocketPeer, why: string): void {
    this.counters.cutOff += 1;
    this.context.logger.warn({ transport: this.name, connection: peer.id, bufferedBytes: peer.socket.bufferedAmount }, `${peer.id}: cut off, ${why}`);
    // The engine hears of it on the next tick, not from inside its own send().
    this.forget(peer, true);
    peer.socket.close(POLICY_VIOLATION, 'not reading: too much output buffered');
    setTimeout(() => peer.socket.terminate(), CLOSE_GRACE_MS).unref();
  }

  private forget(peer: WebSocketPeer, deferNotice = false): void {
    if (peer.closed) return;
    peer.closed = true;
    peer.output.close();
    this.peers.delete(peer);
    reportClosed(this.context, peer, deferNotice);
  }

  private pingAll(): void {
    for (const peer of [...this.peers]) {
      if (!peer.answeredPing) {
        this.context.logger.debug({ connection: peer.id }, 'websocket peer missed a pong: terminated');
        this.forget(peer);
        peer.socket.terminate();
        continue;
      }
      peer.answeredPing = false;
      peer.socket.ping();
    }
  }

}

/** The answer to an upgrade refused: written, then the socket closed (an upgrade request has no body left to read). */
function rejectUpgrade(socket: Duplex, status: number, body: OutgoingMessage): void {
  refuseSocket(socket, status, body);
}
