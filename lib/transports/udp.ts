// UDP: one JSON text per datagram; every reply and notification is one datagram to the sender's
// address and port. Each sender address:port is one Connection (a "peer").
//
// A datagram's source can be forged, so the transport never lets itself be used as a reflector
// or an amplifier. An address:port that is not yet a peer gets nothing done for it until it has
// shown it can receive there: its valid request is answered with a small challenge carrying a
// cookie (udp-cookie.ts), sent only when no larger than the datagram that asked, and the request
// is carried out once it comes back with that cookie; then the sender is a peer. With an API
// key, a stranger's datagram without the key gets nothing at all, not even the challenge.
// Garbage from a stranger is dropped without a word. A peer gets every reply (parse errors
// included) within its byte budget (replyBytesPerSecond); repliesPerSecond caps the datagrams
// sent to one IP address. Datagrams over either cap are dropped and counted.
//
// A reply too large for one datagram is replaced by a small MESSAGE_TOO_LARGE error to the same
// id, never truncated; such a notification is dropped (the seq gap shows, and poll recovers).
//
// UDP has no close, so peers end in one of three ways: a loopback peer whose port is no longer
// bound is closed within a sweep (see udp-liveness.ts; ICMP is not reported to Node), a peer that
// owns nothing (no request in flight, no job or stream in the core) and had no traffic for
// PEER_IDLE_MS expires, and at maxConnections the longest-idle peer that owns nothing makes room
// for a new one. A peer that owns work is never evicted: the new one is refused instead.

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
import { UdpCookies } from './udp-cookie';
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

/** The UDP transport's own settings. */
export interface UdpSettings {
  /** Datagrams per second to one IP address (0 = no cap). */
  readonly repliesPerSecond: number;
  /** Bytes per second to one peer (address:port), with one second of burst (0 = no cap). */
  readonly replyBytesPerSecond: number;
}

export interface UdpStats extends TransportStats {
  /** Datagrams from unknown addresses that got no reply: not a valid request, or too small for the challenge. */
  ignored: number;
  /** Challenges (cookies) sent to unknown addresses. */
  challenged: number;
  /** Datagrams from unknown addresses without the API key (nothing sent). */
  unauthenticated: number;
  /** Datagrams not sent because of repliesPerSecond. */
  rateLimited: number;
  /** Datagrams not sent because the peer's byte budget (replyBytesPerSecond) was spent. */
  overBudget: number;
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
  /** What may still be sent to this peer (undefined: no byte budget). */
  readonly byteBudget: TokenBucket | undefined;

  constructor(
    private readonly owner: UdpTransport,
    id: string,
    key: string,
    address: string,
    port: number,
    bytesPerSecond: number,
  ) {
    this.id = id;
    this.key = key;
    this.address = address;
    this.port = port;
    // At least one whole datagram of burst, or a large reply could never leave.
    this.byteBudget = bytesPerSecond > 0 ? new TokenBucket(bytesPerSecond, Math.max(bytesPerSecond, MAX_DATAGRAM_BYTES)) : undefined;
  }

  send(message: OutgoingMessage): boolean {
    return this.owner.sendToPeer(this, message);
  }
}

/** Refilled continuously at `perSecond` up to `capacity`; starts full. */
class TokenBucket {
  private tokens: number;
  private refilledAt = Date.now();

  constructor(
    private readonly perSecond: number,
    private readonly capacity: number,
  ) {
    this.tokens = capacity;
  }

  take(amount: number, now = Date.now()): boolean {
    this.refill(now);
    if (this.tokens < amount) return false;
    this.tokens -= amount;
    return true;
  }

  /** Time since the last take; a bucket untouched for longer than capacity / perSecond is full. */
  untouchedFor(now: number): number {
    return now - this.refilledAt;
  }

  private refill(now: number): void {
    this.tokens = Math.min(this.capacity, this.tokens + ((now - this.refilledAt) / 1000) * this.perSecond);
    this.refilledAt = now;
  }
}

/** Datagrams per IP address: a bucket each, a burst of one second's worth. */
class ReplyBudget {
  private readonly buckets = new Map<string, TokenBucket>();

  constructor(private readonly perSecond: number) {}

  take(address: string): boolean {
    let bucket = this.buckets.get(address);
    if (bucket === undefined) {
      bucket = new TokenBucket(this.perSecond, this.perSecond);
      this.buckets.set(address, bucket);
    }
    return bucket.take(1);
  }

  /** Forgets buckets that have been full for a while (so the map cannot grow without end). */
  prune(): void {
    const now = Date.now();
    for (const [address, bucket] of this.buckets) {
      // Untouched for 10 s, a bucket of one second's worth is full: forgetting it changes nothing.
      if (bucket.untouchedFor(now) > 10_000) this.buckets.delete(address);
    }
  }
}

export class UdpTransport implements Transport {
  readonly name = 'udp' as const;

  private readonly context: TransportContext;
  private readonly socket: dgram.Socket;
  private readonly peers = new Map<string, UdpPeer>();
  private readonly budget: ReplyBudget | undefined;
  private readonly replyBytesPerSecond: number;
  private readonly cookies = new UdpCookies();
  private address: ListeningAddress | undefined;
  private accepting = true;
  private sweepTimer: NodeJS.Timeout | undefined;
  private livenessCheckRunning = false;
  private nextPeerNumber = 1;
  private counters = {
    accepted: 0,
    refused: 0,
    cutOff: 0,
    ignored: 0,
    challenged: 0,
    unauthenticated: 0,
    rateLimited: 0,
    overBudget: 0,
    dropped: 0,
    vanished: 0,
    expired: 0,
  };

  constructor(context: TransportContext, settings: UdpSettings) {
    this.context = context;
    const { host } = context.endpoint;
    this.socket = dgram.createSocket({ type: net.isIPv6(host) ? 'udp6' : 'udp4' });
    this.socket.on('message', (datagram, sender) => this.receive(datagram, sender));
    this.budget = settings.repliesPerSecond > 0 ? new ReplyBudget(settings.repliesPerSecond) : undefined;
    this.replyBytesPerSecond = settings.replyBytesPerSecond;
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
    if (peer.byteBudget !== undefined && !peer.byteBudget.take(datagram.length)) {
      this.counters.overBudget += 1;
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
    const peer = this.peers.get(key);
    if (peer === undefined) {
      this.receiveFromStranger(datagram, sender, key);
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

  /**
   * A datagram from an address:port that is not a peer. Only a valid request can make it one,
   * and only with the cookie of that address: until then nothing is carried out, and the one
   * reply is the challenge, never larger than what came in.
   */
  private receiveFromStranger(datagram: Buffer, sender: dgram.RemoteInfo, key: string): void {
    if (!this.accepting || datagram.length > this.context.limits.maxMessageBytes) {
      this.counters.ignored += 1;
      return;
    }
    const text = datagram.toString('utf8');
    const { requests, batch } = readRequests(text);
    if (requests.length === 0) {
      this.counters.ignored += 1;
      return;
    }
    // Only the first request that carries a key (a cookie) is checked: a batch of thousands of
    // false ones must not cost a stranger's datagram thousands of digests.
    const { apiKey } = this.context;
    if (apiKey.required && !apiKey.admits(requests.find((request) => request.auth !== undefined)?.auth)) {
      this.counters.unauthenticated += 1;
      return;
    }
    if (this.cookies.verify(requests.find((request) => request.cookie !== undefined)?.cookie, sender.address, sender.port)) {
      const peer = this.admit(key, sender);
      if (peer !== undefined) this.dispatch(peer, text);
      return;
    }
    // A batch has no one id to answer to.
    const id = !batch && isRequestId(requests[0].id) ? requests[0].id : null;
    const cookie = this.cookies.issue(sender.address, sender.port);
    const error = new RkllmError('resend the request with "cookie" at its top level', 'ADDRESS_NOT_VERIFIED', { facts: { cookie } });
    const challenge = Buffer.from(serialize(this.context.handler.refusal(error, id)));
    if (challenge.length > datagram.length) {
      // Answering would send more than came in: an amplifier for a forged source. Silence.
      this.counters.ignored += 1;
      return;
    }
    this.counters.challenged += 1;
    this.transmit(challenge, sender.address, sender.port);
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
      // It echoed its cookie, so it can receive at this address: one small error is no reflection.
      const refusal = Buffer.from(serialize(tooManyConnections(this.context.handler, this.name, limits.maxConnections)));
      this.transmit(refusal, sender.address, sender.port);
      return undefined;
    }
    const peer = new UdpPeer(this, `udp#${this.nextPeerNumber++} ${key}`, key, sender.address, sender.port, this.replyBytesPerSecond);
    this.peers.set(key, peer);
    this.counters.accepted += 1;
    logger.debug({ transport: this.name, connection: peer.id }, 'udp peer known');
    return peer;
  }

  /** Nothing in flight here and nothing held in the core: forgetting it cancels nothing. */
  private ownsNothing(peer: UdpPeer): boolean {
    return peer.inFlight === 0 && !this.context.handler.holdsWorkFor(peer);
  }

  private evictLongestIdle(): boolean {
    let oldest: UdpPeer | undefined;
    for (const peer of this.peers.values()) {
      if ((oldest === undefined || peer.lastActivity < oldest.lastActivity) && this.ownsNothing(peer)) oldest = peer;
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
      if (now - peer.lastActivity > PEER_IDLE_MS && this.ownsNothing(peer)) this.forget(peer, 'idle');
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

/** The valid JSON-RPC requests of a datagram (one, or the valid members of a batch); none for anything else. */
function readRequests(text: string): { requests: Record<string, unknown>[]; batch: boolean } {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { requests: [], batch: false };
  }
  const isRequest = (item: unknown): item is Record<string, unknown> => !isErrorResponse(readEnvelope(item));
  if (Array.isArray(value)) return { requests: value.filter(isRequest), batch: true };
  return { requests: isRequest(value) ? [value] : [], batch: false };
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
