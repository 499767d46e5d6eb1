// The optional API key. When set, every network transport requires it: HTTP and WebSocket in the
// Authorization header (Bearer), TCP and UDP as an "auth" member on each JSON-RPC request (they
// have no headers, and UDP has no connection to authenticate once). stdio is the parent
// process's own pipe and is exempt. Transports and the JSON-RPC front end both check it, through
// this one object.

import { createHash, timingSafeEqual } from 'crypto';

const digest = (text: string): Buffer => createHash('sha256').update(text, 'utf8').digest();

export class ApiKey {
  readonly #digest: Buffer | undefined;

  constructor(key: string | undefined) {
    this.#digest = key === undefined ? undefined : digest(key);
  }

  /** False when no key is set: everything is let in. */
  get required(): boolean {
    return this.#digest !== undefined;
  }

  /** Whether `given` lets a request in. Compared as digests so the time taken says nothing about the key. */
  admits(given: unknown): boolean {
    if (this.#digest === undefined) return true;
    if (typeof given !== 'string') return false;
    return timingSafeEqual(this.#digest, digest(given));
  }

  /** The same for an `Authorization: Bearer <key>` header. */
  admitsHeader(header: string | string[] | undefined): boolean {
    return this.admits(bearerToken(header));
  }
}

/** The key in an `Authorization: Bearer <key>` header, or undefined. */
export function bearerToken(header: string | string[] | undefined): string | undefined {
  const value = Array.isArray(header) ? header[0] : header;
  const match = /^Bearer\s+(.+)$/i.exec(value?.trim() ?? '');
  return match ? match[1].trim() : undefined;
}
