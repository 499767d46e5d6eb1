// The one interface every transport implements, and what a transport is given to do its work.
// A transport owns its sockets and its peers; it turns each peer into a Connection and hands every
// received message to the MessageHandler. The manager (manager.ts) starts and stops them together.

import type { EventEmitter } from 'events';
import type { Logger } from 'pino';
import type { ApiKey } from '../auth';
import type { RkllmError } from '../errors';
import type { Connection, MessageHandler, OutgoingMessage, TransportName } from '../rpc/connection';
import type { RequestId } from '../rpc/envelope';

export interface ListeningAddress {
  transport: TransportName;
  /** The address actually bound ('' for stdio). */
  host: string;
  /** The port actually bound, also when 0 was asked for (0 for stdio). */
  port: number;
}

export interface TransportStats {
  /** Peers open right now (TCP/WebSocket connections, HTTP sockets, known UDP peers, stdio). */
  connections: number;
  /** Peers admitted since start. */
  accepted: number;
  /** Peers turned away because maxConnections was reached (or the transport was stopping). */
  refused: number;
  /** Peers cut off because they stopped reading while output piled up. */
  cutOff: number;
  /** Bytes written to peers but not yet taken by them, summed over peers. */
  bufferedBytes: number;
}

export interface Transport {
  readonly name: TransportName;
  /** Binds and starts serving; rejects with a TransportStartError when it cannot. */
  start(): Promise<ListeningAddress>;
  /** Stops admitting new peers; open peers keep being served (the first step of shutdown). */
  stopAccepting(): void;
  /** Closes every peer (each is reported closed to the handler) and the listener. Never rejects. */
  stop(): Promise<void>;
  stats(): TransportStats;
}

/** What a transport hands its messages to: the JSON-RPC front end. */
export interface TransportHandler extends MessageHandler {
  /** The reply to a message the transport refuses itself (too large, too many peers, no key). */
  refusal(error: RkllmError, id?: RequestId): OutgoingMessage;
  /** Whether the peer still owns requests or streams (a UDP peer that does is never evicted). */
  holdsWorkFor(connection: Connection): boolean;
}

/** The bounds every transport keeps on its peers. */
export interface TransportLimits {
  /** Open connections (TCP, WebSocket, HTTP sockets; UDP peers). */
  readonly maxConnections: number;
  /** Open TCP, WebSocket and HTTP sockets from one remote address (loopback counts too). */
  readonly maxConnectionsPerAddress: number;
  /** The largest message accepted (a line, datagram, body or frame). */
  readonly maxMessageBytes: number;
  /** Bytes queued for one peer that is not reading before it is cut off. */
  readonly maxBufferedBytesPerConnection: number;
}

export interface TransportContext {
  readonly handler: TransportHandler;
  readonly logger: Logger;
  /** Where to listen (unused by stdio); port 0 picks a free one. */
  readonly endpoint: { readonly host: string; readonly port: number };
  readonly limits: TransportLimits;
  /** Checked on HTTP requests and WebSocket upgrades (Bearer); TCP and UDP carry it in the message. */
  readonly apiKey: ApiKey;
}

/**
 * Tells the engine a peer is gone. Never throws into the transport: a failure there is logged and
 * the transport goes on. `deferred` waits for the next tick, for closes noticed inside a send().
 */
export function reportClosed(context: TransportContext, connection: Connection, deferred = false, then?: () => void): void {
  const notify = (): void => {
    try {
      context.handler.connectionClosed(connection);
    } catch (error) {
      context.logger.error({ err: error, connection: connection.id }, 'connectionClosed threw');
    }
    then?.();
  };
  if (deferred) process.nextTick(notify);
  else notify();
}

/** A listening server or a bound socket: what bindOnce needs of it. */
type Bindable = EventEmitter & { address(): unknown };

/**
 * Binds a transport's listener once: an error while binding rejects with a TransportStartError,
 * errors after that are logged (a listener never takes the process down), and the result is the
 * address actually bound (the port too when 0 was asked for).
 */
export function bindOnce(
  target: Bindable,
  transport: TransportName,
  host: string,
  port: number,
  logger: Logger,
  bind: (onBound: () => void) => void,
): Promise<ListeningAddress> {
  return new Promise((resolve, reject) => {
    const onError = (error: Error): void => reject(new TransportStartError(transport, host, port, error));
    target.once('error', onError);
    bind(() => {
      target.removeListener('error', onError);
      target.on('error', (error: Error) => logger.error({ err: error, transport }, `${transport} listener error`));
      const bound = target.address() as { address: string; port: number };
      resolve({ transport, host: bound.address, port: bound.port });
    });
  });
}

/** Why a transport could not start: its address is taken, refused, or does not exist here. */
export class TransportStartError extends Error {
  readonly transport: TransportName;
  readonly host: string;
  readonly port: number;
  /** The system's error code (EADDRINUSE, EACCES, EADDRNOTAVAIL, ...) when there is one. */
  readonly code: string | undefined;

  constructor(transport: TransportName, host: string, port: number, cause: unknown) {
    const code = (cause as NodeJS.ErrnoException | undefined)?.code;
    super(`${transport}: cannot listen on ${formatHostPort(host, port)}: ${describeListenError(code, cause)}`);
    this.name = 'TransportStartError';
    this.transport = transport;
    this.host = host;
    this.port = port;
    this.code = code;
  }
}

function describeListenError(code: string | undefined, cause: unknown): string {
  switch (code) {
    case 'EADDRINUSE':
      return 'the address is already in use (EADDRINUSE)';
    case 'EACCES':
      return 'permission denied (EACCES); ports below 1024 need privileges';
    case 'EADDRNOTAVAIL':
      return 'no network interface of this machine has that address (EADDRNOTAVAIL)';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `the host name does not resolve (${code})`;
    default:
      return cause instanceof Error ? cause.message : String(cause);
  }
}

/** "127.0.0.1:8080", "[::1]:8080". */
export function formatHostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * The address a client on this machine dials to reach a listener bound to `host`: a wildcard
 * bind is reached through loopback of the same family.
 */
export function dialableHost(host: string): string {
  if (host === '' || host === '0.0.0.0') return '127.0.0.1';
  if (host === '::' || host === '[::]') return '::1';
  return host;
}

/** Waits for `promise` at most `ms`; resolves either way (shutdown steps must never hang). */
export function settleWithin(promise: Promise<unknown>, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    timer.unref();
    promise.then(
      () => {
        clearTimeout(timer);
        resolve();
      },
      () => {
        clearTimeout(timer);
        resolve();
      },
    );
  });
}
