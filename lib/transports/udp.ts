// UDP: one JSON text per datagram; every reply and notification is one datagram to the sender's
// address and port. Each sender address:port is one Connection (a "peer").
//
// Reflection guard: nothing is ever sent to an address that has not first sent a valid JSON-RPC
// request; garbage from an unknown address is dropped without a word. After a valid request the
// peer is known and gets replies (parse errors included). config.udpRepliesPerSecond caps the
// datagrams sent to one IP address (0 = no cap); datagrams over the cap are dropped.
//
// A reply too large for one datagram is replaced by a small MESSAGE_TOO_LARGE error to the same
// id, never truncated; such a notification is dropped (the seq gap shows, and poll recovers).
//
// UDP has no close, so peers end in one of three ways: a loopback peer whose port is no longer
// bound is closed within a sweep (see udp-liveness.ts; ICMP is not reported to Node), any peer
// with nothing in flight and no traffic for PEER_IDLE_MS expires, and at maxConnections the
// longest-idle peer makes room for a new one.

import * as dgram from 'dgram';
import * as net from 'net';
import { SerializedMessage, type Connection, type OutgoingMessage } from '../rpc/connection';
import { isErrorResponse, readEnvelope, type RequestId } from '../rpc/envelope';
import { RkllmError } from '../errors';
import { isRequestId, isResponse, messageTooLarge, serialize, tooManyConnections } from './replies';
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
import { boundUdpPorts, isLoopbackAddress } from './udp-liveness';

/** Largest datagram sent. IPv4 allows 65,507 bytes of payload; a margin keeps IPv6 and odd paths safe. */
export const MAX_DATAGRAM_BYTES = 65_000;
const SWEEP_INTERVAL_MS = 250;
/** A peer with nothing in flight and no datagram either way for this long is forgotten. */
export const PEER_IDLE_MS = 300_000;
/** Socket buffers asked for; the kernel caps them at net.core.{r,w}mem_max. */
const SOCKET_BUFFER_BYTES = 4 * 1024 * 1024;
const STOP_BOUND_MS = 300;

type PeerEnd = 'vanished' | 'idle' | 'evicted' | 'stopped';

export interface UdpStats extends TransportStats {
  /** Datagrams from unknown addresses that were not a valid request (no reply sent). */
  ignored: number;
  /** Datagrams not sent because of udpRepliesPerSecond. */
  rateLimited: number;
  /** Datagrams not sent because the peer's unsent bytes were over the bound, or too large. */
  dropped: number;
  vanished: number;
  expired: number;
}

class UdpPeer implements Connection {
  readonly transport = 'udp' as const;
  readonly canPush = true;
  readonly id: string;
  readonly key: string;
  readonly address: string;
  readonly port: number;
  readonly knownSince = Date.now();
  lastActivity = Date.now();
  inFlight = 0;
  /** Bytes handed to the socket and not yet sent by it. */
  unsentBytes = 0;
  closed = false;

  constructor(
    private readonly owner: UdpTransport,
    id: string,
    key: string,
    address: string,
    port: number,
  ) {
    this.id = id;
    this.key = key;
    this.address = address;
    this.port = port;
  }

  send(message: OutgoingMessage): boolean {
    return this.owner.sendToPeer(this, message);
  }
}

/** A token bucket per IP address: a burst of one second's worth, refilled continuously. */
class ReplyBudget {
  private readonly buckets = new Map<string, { tokens: number; refilledAt: number }>();

  constructor(private readonly perSecond: number) {}

  take(address: string): boolean {
    const now = Date.now();
    let bucket = this.buckets.get(address);
    if (bucket === undefined) {
      bucket = { tokens: this.perSecond, refilledAt: now };
      this.buckets.set(address, bucket);
    } else {
      bucket.tokens = Math.min(this.perSecond, bucket.tokens + ((now - bucket.refilledAt) / 1000) * this.perSecond);
      bucket.refilledAt = now;
    }
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    return true;
  }

  /** Forgets buckets that have been full for a while (so the map cannot grow without end). */
  prune(): void {
    const now = Date.now();
    for (const [address, bucket] of this.buckets) {
      if (now - bucket.refilledAt > 10_000) this.buckets.delete(address);
    }
  }
}

export class UdpTransport implements Transport {
  readonly name = 'udp' as const;

  private readonly context: TransportContext;
  private readonly socket: dgram.Socket;
  private readonly peers = new Map<string, UdpPeer>();
  private readonly budget: ReplyBudget | undefined;
  private address: ListeningAddress | undefined;
  private accepting = true;
  private sweepTimer: NodeJS.Timeout | undefined;
  private livenessCheckRunning = false;
  private nextPeerNumber = 1;
  private counters = { accepted: 0, refused: 0, cutOff: 0, ignored: 0, rateLimited: 0, dropped: 0, vanished: 0, expired: 0 };

  /** repliesPerSecond: replies to one address per second (0 = no cap). */
  constructor(context: TransportContext, repliesPerSecond: number) {
    this.context = context;
    const { host } = context.endpoint;
    this.socket = dgram.createSocket({ type: net.isIPv6(host) ? 'udp6' : 'udp4' });
    this.socket.on('message', (datagram, sender) => this.receive(datagram, sender));
    const perSecond = repliesPerSecond;
    this.budget = perSecond > 0 ? new ReplyBudget(perSecond) : undefined;
  }

  async start(): Promise<ListeningAddress> {
    const { host, port } = this.context.endpoint;
    this.address = await bindOnce(this.socket, this.name, host, port, this.context.logger, (bound) =>
      this.socket.bind({ address: host, port, exclusive: true }, bound),
    );
    this.enlargeBuffers();
    this.sweepTimer = setInterval(() => this.sweep(), SWEEP_INTERVAL_MS);
    this.sweepTimer.unref();
    return this.address;
  }

  stopAccepting(): void {
    this.accepting = false;
  }

  async stop(): Promise<void> {
    this.stopAccepting();
    if (this.sweepTimer !== undefined) clearInterval(this.sweepTimer);
    for (const peer of [...this.peers.values()]) this.forget(peer, 'stopped');
    if (this.address !== undefined) {
      this.address = undefined;
      await settleWithin(new Promise<void>((resolve) => this.socket.close(() => resolve())), STOP_BOUND_MS);
    }
  }

  stats(): UdpStats {
    let bufferedBytes = 0;
    for (const peer of this.peers.values()) bufferedBytes += peer.unsentBytes;
    return { connections: this.peers.size, ...this.counters, bufferedBytes };
  }

  /** Called by a peer's Connection.send. False only once the peer is forgotten. */
  sendToPeer(peer: UdpPeer, message: OutgoingMessage): boolean {
    if (peer.closed) return false;
    const datagram = this.encode(message, peer);
    if (datagram === undefined) return true;
    peer.lastActivity = Date.now();
    if (peer.unsentBytes + datagram.length > this.context.limits.maxBufferedBytesPerConnection) {
      // The socket is not keeping up; UDP may lose datagrams anyway, and poll recovers them.
      this.counters.dropped += 1;
      return true;
    }
    peer.unsentBytes += datagram.length;
    this.transmit(datagram, peer.address, peer.port, () => {
      peer.unsentBytes -= datagram.length;
    });
    return true;
  }

  private receive(datagram: Buffer, sender: dgram.RemoteInfo): void {
    const { limits, logger } = this.context;
    const key = formatHostPort(sender.address, sender.port);
    let peer = this.peers.get(key);
    if (peer === undefined) {
      if (!this.accepting || datagram.length > limits.maxMessageBytes) {
        this.counters.ignored += 1;
        return;
      }
      const text = datagram.toString('utf8');
      if (!isValidRequest(text)) {
        this.counters.ignored += 1;
        return;
      }
      peer = this.admit(key, sender);
      if (peer === undefined) return;
      this.dispatch(peer, text);
      return;
    }
    peer.lastActivity = Date.now();
    if (datagram.length > limits.maxMessageBytes) {
      peer.send(messageTooLarge(this.context.handler, limits.maxMessageBytes, 'a datagram'));
      return;
    }
    // A known peer's garbage goes to the engine like anything else and earns its parse error.
    this.dispatch(peer, datagram.toString('utf8'));
    logger.trace({ transport: this.name, connection: peer.id, bytes: datagram.length }, 'udp datagram');
  }

  private dispatch(peer: UdpPeer, text: string): void {
    peer.inFlight += 1;
    this.context.handler
      .handleMessage(peer, text)
      .catch((error: unknown) => this.context.logger.error({ err: error, connection: peer.id }, 'handleMessage rejected'))
      .finally(() => {
        peer.inFlight -= 1;
        peer.lastActivity = Date.now();
      });
  }

  private admit(key: string, sender: dgram.RemoteInfo): UdpPeer | undefined {
    const { limits, logger } = this.context;
    if (this.peers.size >= limits.maxConnections && !this.evictLongestIdle()) {
      this.counters.refused += 1;
      // It did send a valid request, so one small error back is within the reflection rule.
      const refusal = Buffer.from(serialize(tooManyConnections(this.context.handler, this.name, limits.maxConnections)));
      this.transmit(refusal, sender.address, sender.port);
      return undefined;
    }
    const peer = new UdpPeer(this, `udp#${this.nextPeerNumber++} ${key}`, key, sender.address, sender.port);
    this.peers.set(key, peer);
    this.counters.accepted += 1;
    logger.debug({ transport: this.name, connection: peer.id }, 'udp peer known');
    return peer;
  }

  private evictLongestIdle(): boolean {
    let oldest: UdpPeer | undefined;
    for (const peer of this.peers.values()) {
      if (peer.inFlight === 0 && (oldest === undefined || peer.lastActivity < oldest.lastActivity)) oldest = peer;
    }
    if (oldest === undefined) return false;
    this.forget(oldest, 'evicted');
    return true;
  }

  private forget(peer: UdpPeer, end: PeerEnd): void {
    if (peer.closed) return;
    peer.closed = true;
    this.peers.delete(peer.key);
    if (end === 'vanished') this.counters.vanished += 1;
    if (end === 'idle') this.counters.expired += 1;
    this.context.logger.debug({ transport: this.name, connection: peer.id, end }, 'udp peer forgotten');
    reportClosed(this.context, peer);
  }

  private encode(message: OutgoingMessage, peer: UdpPeer): Buffer | undefined {
    const datagram = Buffer.from(serialize(message));
    if (datagram.length <= MAX_DATAGRAM_BYTES) return datagram;
    const replacement = replacementForOversize(this.context, message, datagram.length);
    if (replacement === undefined) {
      this.counters.dropped += 1;
      this.context.logger.warn(
        { transport: this.name, connection: peer.id, bytes: datagram.length },
        'udp notification too large for one datagram: dropped',
      );
      return undefined;
    }
    const small = Buffer.from(serialize(replacement));
    // A batch of many oversize replies could itself be too large: then one error, id null.
    return small.length <= MAX_DATAGRAM_BYTES ? small : Buffer.from(serialize(messageTooLarge(this.context.handler, MAX_DATAGRAM_BYTES, 'the reply')));
  }

  private transmit(datagram: Buffer, address: string, port: number, sent?: () => void): void {
    if (this.budget !== undefined && !this.budget.take(address)) {
      this.counters.rateLimited += 1;
      sent?.();
      return;
    }
    this.socket.send(datagram, port, address, (error) => {
      sent?.();
      if (error) this.context.logger.debug({ err: error, transport: this.name, to: formatHostPort(address, port) }, 'udp send failed');
    });
  }

  private sweep(): void {
    const now = Date.now();
    for (const peer of [...this.peers.values()]) {
      if (peer.inFlight === 0 && now - peer.lastActivity > PEER_IDLE_MS) this.forget(peer, 'idle');
    }
    this.budget?.prune();
    this.checkLoopbackPeers();
  }

  private checkLoopbackPeers(): void {
    if (this.livenessCheckRunning) return;
    let anyLoopback = false;
    for (const peer of this.peers.values()) {
      if (isLoopbackAddress(peer.address)) {
        anyLoopback = true;
        break;
      }
    }
    if (!anyLoopback) return;
    this.livenessCheckRunning = true;
    const startedAt = Date.now();
    boundUdpPorts()
      .then((ports) => {
        if (ports === undefined) return;
        for (const peer of [...this.peers.values()]) {
          // A peer first heard after the tables were read may not be in them yet.
          if (peer.knownSince >= startedAt || !isLoopbackAddress(peer.address)) continue;
          if (!ports.has(peer.port)) this.forget(peer, 'vanished');
        }
      })
      .catch((error: unknown) => this.context.logger.debug({ err: error }, 'udp liveness check failed'))
      .finally(() => {
        this.livenessCheckRunning = false;
      });
  }

  private enlargeBuffers(): void {
    try {
      this.socket.setRecvBufferSize(SOCKET_BUFFER_BYTES);
      this.socket.setSendBufferSize(SOCKET_BUFFER_BYTES);
    } catch (error) {
      this.context.logger.debug({ err: error }, 'udp: socket buffer sizes left at the defaults');
    }
  }

}

/** A valid JSON-RPC request, or a batch holding at least one: what makes an address known. */
function isValidRequest(text: string): boolean {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return false;
  }
  const isRequest = (item: unknown): boolean => !isErrorResponse(readEnvelope(item));
  return Array.isArray(value) ? value.some(isRequest) : isRequest(value);
}

/** The MESSAGE_TOO_LARGE error for each response in `message`; undefined when it holds none. */
function replacementForOversize(context: TransportContext, message: OutgoingMessage, size: number): OutgoingMessage | undefined {
  const error = new RkllmError(`the reply (${size} bytes) does not fit one UDP datagram; ask over TCP, HTTP or WebSocket`, 'MESSAGE_TOO_LARGE', {
    facts: { max_bytes: MAX_DATAGRAM_BYTES, reply_bytes: size },
  });
  const tooLarge = (id: RequestId): Record<string, unknown> => context.handler.refusal(error, id) as Record<string, unknown>;
  if (Array.isArray(message)) {
    const errors = message.filter(isResponse).map((response) => tooLarge(isRequestId(response.id) ? response.id : null));
    return errors.length > 0 ? errors : undefined;
  }
  // A message serialised by its sender is a notification (a token): it has no reply to replace.
  if (message instanceof SerializedMessage) return undefined;
  return isResponse(message) ? tooLarge(isRequestId(message.id) ? message.id : null) : undefined;
}
