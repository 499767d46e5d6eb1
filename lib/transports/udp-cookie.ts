// The UDP return-routability check. A datagram's source address can be forged, so before the
// server does any work for an address:port, or sends it more bytes than it received, the sender
// must show that it can receive there: it echoes a cookie the server sent to that address. The
// cookie is a MAC of the address, the port and a time epoch under a secret of this process, so
// the server keeps no state for addresses that have not proved themselves (a forged flood fills
// no table), and a cookie is worth nothing at any other address or after two epochs.

import { createHmac, randomBytes, timingSafeEqual } from 'crypto';

/** A cookie is valid for the epoch it was issued in and the next one: 10 to 20 minutes. */
export const COOKIE_EPOCH_MS = 10 * 60_000;
/** 16 bytes of MAC in base64url. */
const COOKIE_BYTES = 16;

export class UdpCookies {
  readonly #secret = randomBytes(32);

  /** The cookie of this address and port, valid from now for at least one epoch. */
  issue(address: string, port: number, now = Date.now()): string {
    return this.#mac(address, port, epochOf(now)).toString('base64url');
  }

  /** Whether `given` is a cookie this server issued to this address and port, and still valid. */
  verify(given: unknown, address: string, port: number, now = Date.now()): boolean {
    if (typeof given !== 'string') return false;
    const presented = Buffer.from(given, 'base64url');
    if (presented.length !== COOKIE_BYTES) return false;
    const epoch = epochOf(now);
    // Both are computed, so the time taken says nothing about which epoch matched.
    const current = timingSafeEqual(presented, this.#mac(address, port, epoch));
    const previous = timingSafeEqual(presented, this.#mac(address, port, epoch - 1));
    return current || previous;
  }

  #mac(address: string, port: number, epoch: number): Buffer {
    return createHmac('sha256', this.#secret).update(`${epoch}|${address}|${port}`).digest().subarray(0, COOKIE_BYTES);
  }
}

function epochOf(now: number): number {
  return Math.floor(now / COOKIE_EPOCH_MS);
}
