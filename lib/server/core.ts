// The engine's state, shared by every method handler: the runtime, models, streams and
// connections, and the rule for sending to a peer (a failed send means the peer is gone).

import type { Logger } from 'pino';
import type { Connection, OutgoingMessage, TransportName } from '../rpc/connection';
import type { Runtime } from '../runtime/runtime';
import type { ServerConfig } from './config';
import { ConnectionRegistry } from './connections';
import { ModelRegistry } from './models';
import { PathPolicy } from './paths';
import { StreamRegistry } from './streams';
import type { ClientDialer } from './types';

export class ServerCore {
  readonly config: ServerConfig;
  readonly logger: Logger;
  readonly runtime: Runtime;
  readonly paths: PathPolicy;
  readonly models: ModelRegistry;
  readonly connections = new ConnectionRegistry();
  readonly streams: StreamRegistry;
  readonly dialers = new Map<TransportName, ClientDialer>();
  /** What rkllm_list_functions answers; set once the method table is built. */
  functionList: unknown[] = [];
  shuttingDown = false;

  constructor(config: ServerConfig, logger: Logger, runtime: Runtime, paths: PathPolicy) {
    this.config = config;
    this.logger = logger;
    this.runtime = runtime;
    this.paths = paths;
    this.models = new ModelRegistry(runtime, config);
    this.streams = new StreamRegistry(config, this.connections, (connection, message) => this.deliver(connection, message));
  }

  /** Sends unless the peer is known to be gone; a refused send closes the connection. */
  deliver(connection: Connection, message: OutgoingMessage): boolean {
    if (this.connections.isClosed(connection)) return false;
    let sent: boolean;
    try {
      sent = connection.send(message);
    } catch (error) {
      this.logger.warn({ connection: connection.id, err: error }, 'send threw; treating the connection as closed');
      sent = false;
    }
    if (!sent) this.connectionClosed(connection);
    return sent;
  }

  /** The peer is gone: its requests are cancelled and its streams freed. */
  connectionClosed(connection: Connection): void {
    const state = this.connections.close(connection);
    if (!state) return;
    for (const stream of [...state.streams]) this.streams.remove(stream);
    for (const job of [...state.jobs]) job.cancel('connection_closed');
    if (state.jobs.size > 0 || state.streams.size > 0) this.logger.debug({ connection: connection.id }, 'connection closed');
  }
}
