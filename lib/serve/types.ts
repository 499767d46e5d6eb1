// What the command line, the tests and embedders see of a server made by createServer: the
// core behind its front ends, ready for transports (which hand it messages as a
// TransportHandler) and for shutdown.

import type { Logger } from 'pino';
import type { CoreStats } from '../core/core';
import type { Readiness } from '../core/readiness';
import type { TransportName } from '../rpc/connection';
import type { TransportHandler } from '../transports/transport';
import type { ClientDialer } from './dialers';
import type { HttpRoutes } from '../transports/http';
import type { ServerConfig } from './config';

export type { ClientDialer, DialedClient } from './dialers';

export type ServerStats = CoreStats;

export interface RkllmServer extends TransportHandler {
  readonly config: ServerConfig;
  readonly logger: Logger;
  /** Lets test_connection_drop open real connections of that transport to the server. */
  registerDialer(transport: TransportName, dialer: ClientDialer): void;
  stats(): ServerStats;
  /** Whether requests sent now would be served: what GET /health answers (lib/core/readiness.ts). */
  readiness(): Readiness;
  /**
   * Loads the start-up model, if there is one (createServer's deferStartupModel leaves it to the
   * caller, to call once the transports are bound); the same promise on every call. Rejects with
   * the one-paragraph MODEL_INIT_FAILED error.
   */
  loadStartupModel(): Promise<void>;
  /** The OpenAI-compatible routes the HTTP transport serves under /v1 (lib/openai). */
  readonly openai: HttpRoutes;
  /** Every route the HTTP transport serves beside JSON-RPC: the OpenAI ones and Ollama's under /api (lib/ollama). */
  readonly routes: HttpRoutes;
  /** Stops accepting work, cancels or finishes runs (config.shutdownMode), destroys every model.
   * Bounded by config.shutdownTimeoutMs; never rejects. */
  shutdown(): Promise<void>;
}
