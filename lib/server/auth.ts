// The optional API key (config.apiKey). When set, every network transport requires it: HTTP and
// WebSocket in the Authorization header (Bearer), TCP and UDP as an "auth" member on each
// JSON-RPC request (they have no headers, and UDP has no connection to authenticate once).
// stdio is the parent process's own pipe and is exempt.

import { createHash, timingSafeEqual } from 'crypto';
import type { TransportName } from '../rpc/connection';

/** Compared as digests so the time taken says nothing about the key, its length included. */
export function apiKeyMatches(expected: string, given: unknown): boolean {
  if (typeof given !== 'string') return false;
  const digest = (text: string): Buffer => createHash('sha256').update(text, 'utf8').digest();
  return timingSafeEqual(digest(expected), digest(given));
}

/** The key in an `Authorization: Bearer <key>` header, or undefined. */
export function bearerToken(header: string | string[] | undefined): string | undefined {
  const value = Array.isArray(header) ? header[0] : header;
  const match = /^Bearer\s+(.+)$/i.exec(value?.trim() ?? '');
  return match ? match[1].trim() : undefined;
}

/** The transports whose JSON-RPC requests carry the key in the message itself. */
export function keyInMessage(transport: TransportName | 'memory'): boolean {
  return transport === 'tcp' || transport === 'udp';
}
