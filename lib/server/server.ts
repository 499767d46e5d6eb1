// RkllmServer: the engine behind every transport. Messages go to the JSON-RPC engine; closed
// connections, stats and shutdown are answered from the shared core.

import type { Logger } from 'pino';
import { buildMethodTable, describeMethods } from '../methods';
import { OpenAiApi, type OpenAiRoutes } from '../openai/api';
import type { Connection, TransportName } from '../rpc/connection';
import { RpcEngine } from '../rpc/engine';
import type { ServerConfig } from './config';
import type { ServerCore } from './core';
import type { ClientDialer, RkllmServer, ServerStats } from './types';

export class Server implements RkllmServer {
  readonly config: ServerConfig;
  readonly logger: Logger;
  readonly core: ServerCore;
  readonly openai: OpenAiRoutes;
  readonly #engine: RpcEngine;
  #shutdown: Promise<void> | undefined;

  constructor(core: ServerCore) {
    this.core = core;
    this.config = core.config;
    this.logger = core.logger;
    const table = buildMethodTable({ enableTestHooks: core.config.enableTestHooks });
    core.functionList = describeMethods(table);
    this.#engine = new RpcEngine(table, core);
    this.openai = new OpenAiApi(core);
  }

  handleMessage(connection: Connection, text: string): Promise<void> {
    return this.#engine.handleMessage(connection, text);
  }

  connectionClosed(connection: Connection): void {
    this.core.connectionClosed(connection);
  }

  registerDialer(transport: TransportName, dialer: ClientDialer): void {
    this.core.dialers.set(transport, dialer);
  }

  stats(): ServerStats {
    let queued = 0;
    let running = 0;
    for (const loaded of this.core.models.all()) {
      queued += loaded.scheduler.queued;
      running += loaded.scheduler.running;
    }
    return {
      connections: this.core.connections.size,
      streams: this.core.streams.size,
      queued,
      running,
      models: this.core.models.size,
    };
  }

  shutdown(): Promise<void> {
    this.#shutdown ??= this.#stop().catch((error: unknown) => {
      this.logger.error({ err: error }, 'shutdown did not complete cleanly');
    });
    return this.#shutdown;
  }

  async #stop(): Promise<void> {
    const { core, config } = this;
    core.shuttingDown = true;
    const deadline = Date.now() + config.shutdownTimeoutMs;
    const models = core.models.all();
    if (config.shutdownMode === 'finish') {
      await Promise.all(models.map((loaded) => loaded.scheduler.idle(Math.max(0, deadline - Date.now()))));
    }
    const destroyed = Promise.all(
      models.map((loaded) => core.models.destroy(loaded, 'shutdown').catch((error: unknown) => {
        this.logger.warn({ handle: loaded.handle, err: error }, 'rkllm_destroy failed during shutdown');
      })),
    );
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, Math.max(0, deadline - Date.now()));
      timer.unref();
    });
    await Promise.race([destroyed, timeout]);
    clearTimeout(timer);
    core.streams.clear();
    this.logger.info('server stopped');
  }
}
