// TCP: newline-delimited JSON, one Connection per socket. Each socket is read and written on its
// own, so a slow peer only fills its own buffer (and is cut off past the bound); it never holds
// up another. Sockets are counted at accept against limits.maxConnections and
// limits.maxConnectionsPerAddress; the excess gets one -32017 line and is closed at once.

import * as net from 'net';
import { RkllmError } from '../errors';
import { Admission } from './admission';
import { serialize } from './replies';
import { StreamPeer, type CloseReason } from './stream-peer';
import {
  formatHostPort,
  bindOnce,
  settleWithin,
  type ListeningAddress,
  type Transport,
  type TransportContext,
  type TransportStats,
} from './transport';

/** TCP keep-alive probes find peers whose machine vanished from the network. */
const KEEPALIVE_DELAY_MS = 60_000;
/** A half-closed peer still owed replies is probed this often (see stream-peer.ts). */
export const HALF_CLOSE_PROBE_MS = 500;
const STOP_BOUND_MS = 500;

export class TcpTransport implements Transport {
  readonly name = 'tcp' as const;

  private readonly context: TransportContext;
  private readonly server: net.Server;
  private readonly peers = new Set<StreamPeer>();
  private readonly admission: Admission;
  private address: ListeningAddress | undefined;
  private accepting = true;
  private nextPeerNumber = 1;
  private counters = { accepted: 0, refused: 0, cutOff: 0 };

  constructor(context: TransportContext) {
    this.context = context;
    this.admission = new Admission(this.name, context.limits);
    // Half-open allowed: a peer that shuts down its sending side still gets its replies (and is
    // probed meanwhile, so a crashed client's FIN does not keep its runs going).
    this.server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => this.admit(socket));
  }

  async start(): Promise<ListeningAddress> {
    const { host, port } = this.context.endpoint;
    this.address = await bindOnce(this.server, this.name, host, port, this.context.logger, (bound) =>
      this.server.listen({ host, port, backlog: 511 }, bound),
    );
    return this.address;
  }

  stopAccepting(): void {
    this.accepting = false;
    if (this.server.listening) this.server.close();
  }

  async stop(): Promise<void> {
    this.stopAccepting();
    for (const peer of [...this.peers]) peer.close('stopped');
    await settleWithin(new Promise<void>((resolve) => (this.server.listening ? this.server.close(() => resolve()) : resolve())), STOP_BOUND_MS);
  }

  stats(): TransportStats {
    let bufferedBytes = 0;
    for (const peer of this.peers) bufferedBytes += peer.bufferedBytes;
    return { connections: this.peers.size, ...this.counters, bufferedBytes };
  }

  private admit(socket: net.Socket): void {
    const { logger } = this.context;
    // Errors before the peer exists (a reset during refusal) must not become uncaught.
    socket.on('error', () => undefined);
    const refusal = this.accepting ? this.admission.admit(socket) : new RkllmError('the server is shutting down', 'SHUTTING_DOWN');
    if (refusal !== undefined) {
      this.counters.refused += 1;
      logger.debug({ transport: this.name, remote: socket.remoteAddress }, `tcp connection refused: ${refusal.message}`);
      // The line is handed to the kernel before the close, so a peer that reads gets it; waiting
      // for the peer instead would let refused sockets pile up.
      socket.write(serialize(this.context.handler.refusal(refusal)) + '\n');
      socket.destroy();
      return;
    }
    socket.setKeepAlive(true, KEEPALIVE_DELAY_MS);
    this.counters.accepted += 1;
    const remote = formatHostPort(socket.remoteAddress ?? '?', socket.remotePort ?? 0);
    const peer = new StreamPeer({
      id: `tcp#${this.nextPeerNumber++} ${remote}`,
      transport: 'tcp',
      input: socket,
      output: socket,
      context: this.context,
      endOutput: () => socket.end(),
      destroy: () => socket.destroy(),
      halfCloseProbeMs: HALF_CLOSE_PROBE_MS,
      onClosed: (closed, reason) => this.forget(closed, reason),
    });
    this.peers.add(peer);
    logger.debug({ transport: this.name, connection: peer.id }, 'tcp connection opened');
  }

  private forget(peer: StreamPeer, reason: CloseReason): void {
    this.peers.delete(peer);
    if (reason === 'cut-off') this.counters.cutOff += 1;
    this.context.logger.debug({ transport: this.name, connection: peer.id, reason }, 'tcp connection closed');
  }

}
