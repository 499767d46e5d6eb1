// Admission of connection-oriented peers (TCP, HTTP and WebSocket sockets): every socket is
// counted the moment it is accepted, against the transport's bound and against a bound per remote
// address, and a socket over either is refused there and then. Counting later (at the first
// request, or at the WebSocket upgrade) would let silent sockets hold file descriptors unbounded.

import type { Socket } from 'net';
import { RkllmError } from '../errors';
import { tooManyConnectionsError } from './replies';

export interface AdmissionLimits {
  readonly maxConnections: number;
  readonly maxConnectionsPerAddress: number;
}

export class Admission {
  private open = 0;
  private readonly perAddress = new Map<string, number>();

  constructor(
    private readonly transport: string,
    private readonly limits: AdmissionLimits,
  ) {}

  /** Sockets admitted and not yet closed. */
  /**
   * Counts the socket in, until it closes; or, when a bound is reached, says why it is refused
   * (the socket is then not counted, and the caller closes it).
   */
  admit(socket: Socket): RkllmError | undefined {
    const { maxConnections, maxConnectionsPerAddress } = this.limits;
    const address = normalizeAddress(socket.remoteAddress);
    if (this.open >= maxConnections) {
      return tooManyConnectionsError(this.transport, maxConnections);
    }
    const fromAddress = this.perAddress.get(address) ?? 0;
    if (fromAddress >= maxConnectionsPerAddress) {
      return new RkllmError(
        `this server accepts at most ${maxConnectionsPerAddress} ${this.transport} connections from one address (${address}) at once`,
        'TOO_MANY_CONNECTIONS',
        { facts: { max_connections_per_address: maxConnectionsPerAddress } },
      );
    }
    this.open += 1;
    this.perAddress.set(address, fromAddress + 1);
    socket.once('close', () => this.release(address));
    return undefined;
  }

  private release(address: string): void {
    this.open -= 1;
    const left = (this.perAddress.get(address) ?? 1) - 1;
    if (left > 0) this.perAddress.set(address, left);
    else this.perAddress.delete(address);
  }
}

/** An IPv4 client of a dual-stack listener shows as ::ffff:a.b.c.d; it is the same address as a.b.c.d. */
export function normalizeAddress(address: string | undefined): string {
  if (address === undefined) return '?';
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return mapped ? mapped[1] : address.toLowerCase();
}
