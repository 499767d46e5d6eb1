// Server: the core behind its two front ends, as one TransportHandler for the transports.
// JSON-RPC messages go to the JSON-RPC front end, /v1 requests to the OpenAI one, /api to Ollama's,
// GET / and /status to the web page's routes; stats and shutdown are the core's.

import * as path from 'path';
import type { Logger } from 'pino';
import { ApiKey } from '../auth';
import type { ServerCore } from '../core/core';
import type { LoadedModel } from '../core/models';
import { RkllmError } from '../errors';
import type { Readiness } from '../core/readiness';
import { JsonRpcFrontEnd } from '../methods';
import { OllamaApi } from '../ollama/api';
import { OpenAiApi } from '../openai/api';
import { packageRoot } from '../package-root';
import { WebRoutes } from '../web/routes';
import type { HttpRoutes } from '../transports/http';
import { FrontEndRoutes } from './front-ends';
import type { Connection, OutgoingMessage, TransportName } from '../rpc/connection';
import type { RequestId } from '../rpc/envelope';
import type { ClientDialer } from './dialers';
import type { ServerConfig } from './config';
import { probeConnectionDrop } from './drop-probe';
import { Metrics } from './metrics';
import { logRequests } from './request-log';
import type { RkllmServer, ServerStats } from './types';

export class Server implements RkllmServer {
  readonly config: ServerConfig;
  readonly logger: Logger;
  readonly core: ServerCore;
  readonly openai: OpenAiApi;
  readonly ollama: OllamaApi;
  /** GET /metrics (Prometheus). */
  readonly metrics: Metrics;
  /** The HTTP routes beside JSON-RPC: OpenAI's under /v1, Ollama's under /api, the web page's, /metrics. */
  readonly routes: HttpRoutes;
  readonly apiKey: ApiKey;
  readonly #jsonRpc: JsonRpcFrontEnd;
  readonly #dialers = new Map<TransportName, ClientDialer>();
  #shutdown: Promise<void> | undefined;
  #startupLoad: Promise<void> | undefined;

  constructor(core: ServerCore, config: ServerConfig, logger: Logger) {
    this.core = core;
    this.config = config;
    this.logger = logger;
    this.apiKey = new ApiKey(config.apiKey);
    const chatSettings = (loaded: LoadedModel) => {
      // rkllm_init's models have no settings of their own: the defaults of every model hold for them.
      const settings = loaded.settings ?? config.modelDefaults;
      return { chat_template: settings.chat_template, truncation: settings.truncation, thinking: settings.thinking };
    };
    this.#jsonRpc = new JsonRpcFrontEnd({
      core,
      logger,
      maxMessageBytes: config.maxMessageBytes,
      maxBatchLength: config.maxBatchLength,
      enableTestHooks: config.enableTestHooks,
      apiKey: this.apiKey,
      dropProbe: (transport, handle) => probeConnectionDrop(core, this.#dialers, transport, handle),
      chatSettings,
    });
    this.openai = new OpenAiApi(core, chatSettings);
    this.ollama = new OllamaApi(core, chatSettings);
    const web = new WebRoutes(core, path.join(packageRoot(), 'web'), (error, route) => logger.error({ err: error, path: route }, 'the web page could not be served'));
    this.metrics = new Metrics(core);
    this.routes = new FrontEndRoutes([this.openai, this.ollama, web, this.metrics]);
    logRequests(core.requests, logger);
  }

  handleMessage(connection: Connection, text: string): Promise<void> {
    return this.#jsonRpc.handleMessage(connection, text);
  }

  connectionClosed(connection: Connection): void {
    this.#jsonRpc.connectionClosed(connection);
  }

  refusal(error: RkllmError, id?: RequestId): OutgoingMessage {
    return this.#jsonRpc.refusal(error, id);
  }

  holdsWorkFor(connection: Connection): boolean {
    return this.#jsonRpc.holdsWorkFor(connection);
  }

  registerDialer(transport: TransportName, dialer: ClientDialer): void {
    this.#dialers.set(transport, dialer);
  }

  stats(): ServerStats {
    return this.core.stats();
  }

  readiness(): Readiness {
    return this.core.readiness();
  }

  loadStartupModel(): Promise<void> {
    this.#startupLoad ??= this.#loadStartup();
    return this.#startupLoad;
  }

  async #loadStartup(): Promise<void> {
    const { catalog, residency } = this.core;
    // The first reading of the models directories, so that /health knows whether there is a model to serve.
    const scanned = catalog.entries().catch(() => undefined);
    const entry = catalog.startup;
    if (entry) {
      try {
        // The operator's own model is not confined to the models directories.
        await residency.loadStartup(entry);
      } catch (error) {
        const detail = error instanceof Error ? error.message : String(error);
        throw new RkllmError(`Could not load the start-up model '${entry.modelPath}': ${detail}`, 'MODEL_INIT_FAILED');
      }
    }
    await scanned;
    this.logger.info({ ready: true, startup_model: entry?.name ?? null }, entry ? `ready: ${entry.name} is loaded` : 'ready');
  }

  shutdown(): Promise<void> {
    this.#shutdown ??= this.core
      .shutdown(this.config.shutdownMode, this.config.shutdownTimeoutMs)
      .then(() => this.logger.info('server stopped'))
      .catch((error: unknown) => {
        this.logger.error({ err: error }, 'shutdown did not complete cleanly');
      });
    return this.#shutdown;
  }
}
