// What the command line and the transports see of the server (the engine in lib/server and
// lib/rpc implements it). Transports hand it messages through MessageHandler; the CLI creates
// it, starts the transports, and shuts it down.

import type { Logger } from 'pino';
import type { MessageHandler, TransportName } from '../rpc/connection';
import type { OpenAiRoutes } from '../openai/api';
import type { ServerConfig } from './config';

/** A real client of one transport, opened by the server to itself (test hooks only). */
export interface DialedClient {
  /** Sends one message: a line (stdio/TCP), a datagram, a frame, or an HTTP body (SSE). */
  send(text: string): void;
  /** Every message the server sends back, as text. */
  onMessage(listener: (text: string) => void): void;
  /** Drops the connection abruptly: no goodbye, as a crashed client would. */
  drop(): void;
}

export interface ClientDialer {
  dial(): Promise<DialedClient>;
}

export interface ServerStats {
  /** Connections the engine holds state for. */
  connections: number;
  /** Streams not yet expired (running, queued, or finished but still pollable). */
  streams: number;
  queued: number;
  running: number;
  models: number;
}

export interface RkllmServer extends MessageHandler {
  readonly config: ServerConfig;
  readonly logger: Logger;
  /** Lets test_connection_drop open real connections of that transport to the server. */
  registerDialer(transport: TransportName, dialer: ClientDialer): void;
  stats(): ServerStats;
  /** The OpenAI-compatible routes the HTTP transport serves under /v1 (lib/openai). */
  readonly openai: OpenAiRoutes;
  /** Stops accepting work, cancels or finishes runs (config.shutdownMode), destroys every model.
   * Bounded by config.shutdownTimeoutMs; never rejects. */
  shutdown(): Promise<void>;
}
