// The composition root: the one place that wires it all. createServer opens the runtime (in a
// probe host: every model lives in a host process of its own, lib/host), builds the core and
// its front ends and loads the start-up model as "default". The command line defers that load:
// it binds the transports first (a port conflict is reported at once, and probes get an answer
// during a load of 30-60 s), then calls loadStartupModel(); requests for the model meanwhile
// wait for it. Start-up failures are RkllmErrors whose message is one paragraph the command
// line can print as it is.

import { promises as fsp } from 'fs';
import type { Logger } from 'pino';
import { ApiKey } from '../auth';
import { ServerCore } from '../core/core';
import { RkllmError, isRkllmError } from '../errors';
import { HostRuntime } from '../host/host-runtime';
import { isSimModelPath } from '../runtime/emulated';
import { TransportManager, type TransportManagerOptions } from '../transports/manager';
import { modelControlPolicy, type ServerConfig } from './config';
import { createLogger } from './logger';
import { Server } from './server';
import type { RkllmServer } from './types';

export { createLogger } from './logger';
export { defaultConfig, isLoopback, modelControlPolicy, type ServerConfig, type TransportConfig } from './config';
export type { ClientDialer, DialedClient, RkllmServer, ServerStats } from './types';
export { dialersFor } from './dialers';

/** The runtime, opened in a probe host: this process never loads it (each model gets a host). */
async function openConfiguredRuntime(config: ServerConfig, logger: Logger): Promise<HostRuntime> {
  try {
    return await HostRuntime.open({ path: config.runtime, abi: config.runtimeAbi }, config, logger);
  } catch (error) {
    if (config.runtime === undefined && isRkllmError(error, 'RUNTIME_NOT_FOUND')) {
      throw new RkllmError(
        'No RKLLM runtime was found: the dynamic loader could not find librkllmrt.so (and RKLLM_RUNTIME is not set). ' +
          "On a Rockchip board, install Rockchip's librkllmrt or pass its path with --runtime /path/to/librkllmrt.so; " +
          'anywhere else, start with --runtime sim to use the built-in emulated runtime.',
        'RUNTIME_NOT_FOUND',
      );
    }
    const message = error instanceof Error ? error.message : String(error);
    throw new RkllmError(
      `Could not open the RKLLM runtime '${config.runtime ?? 'librkllmrt.so'}': ${message}`,
      isRkllmError(error) ? error.code : 'RUNTIME_LOAD_FAILED',
    );
  }
}

export interface CreateServerOptions {
  /** Leave the start-up model to the caller's server.loadStartupModel() (after binding); default: loaded before createServer resolves. */
  readonly deferStartupModel?: boolean;
}

/** A start-up model file that cannot be read is known at once, before anything is bound or loaded. */
async function checkReadable(modelPath: string): Promise<void> {
  if (isSimModelPath(modelPath)) return;
  try {
    const handle = await fsp.open(modelPath, 'r');
    await handle.close();
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (error as Error).message;
    throw new RkllmError(`Could not load the start-up model '${modelPath}': ${reason}; fix --model (or "model" in the config file)`, 'MODEL_INIT_FAILED');
  }
}

export async function createServer(
  config: ServerConfig,
  logger: Logger = createLogger(config.logLevel),
  options: CreateServerOptions = {},
): Promise<RkllmServer> {
  // libuv starts its thread pool at its first use and aborts the process when it cannot start a
  // thread then (a thread limit reached later). The addon's first call used to start it here;
  // with the runtime in hosts nothing does, so one file operation starts it now.
  await fsp.stat(__dirname);
  const runtime = await openConfiguredRuntime(config, logger);
  const modelControl = modelControlPolicy(config);
  const core = new ServerCore({ ...config, modelControl }, logger, runtime);
  const server = new Server(core, config, logger);
  const { info } = runtime;
  logger.info(
    { runtime: info.path, abi: info.abi, abi_source: info.abiSource, release: info.release, emulated: info.emulated, model_control: modelControl },
    'runtime opened',
  );
  // How an ABI '1.3' setting was settled; a warning when the release could not be told.
  if (info.note !== undefined) logger[info.abi === '1.3' && info.release === undefined ? 'warn' : 'info']({ abi: info.abi }, info.note);
  if (config.model !== undefined) {
    const given = typeof config.model === 'string' ? { path: config.model } : config.model;
    try {
      await checkReadable(given.path);
    } catch (error) {
      await server.shutdown();
      throw error;
    }
    // Requests for it wait from now on (lib/core/residency.ts).
    core.residency.expectStartup(core.catalog.setStartup(given));
  }
  if (!options.deferStartupModel) {
    try {
      await server.loadStartupModel();
    } catch (error) {
      await server.shutdown();
      throw error;
    }
  }
  return server;
}

export interface TransportOptions {
  /** The parent on stdio is gone (end of stdin, or stdout broke) and its replies are written. */
  readonly onStdioPeerGone?: TransportManagerOptions['onStdioPeerGone'];
  /** Overrides process.stdin/stdout (tests, embedding). */
  readonly stdio?: TransportManagerOptions['stdio'];
}

/** The server's transports, each given its own share of the settings; start them with startAll(). */
export function createTransports(server: RkllmServer & { readonly apiKey?: ApiKey }, options: TransportOptions = {}): TransportManager {
  const { config } = server;
  return new TransportManager({
    transports: config.transports,
    limits: {
      maxConnections: config.maxConnections,
      maxConnectionsPerAddress: config.maxConnectionsPerAddress,
      maxMessageBytes: config.maxMessageBytes,
      maxBufferedBytesPerConnection: config.maxBufferedBytesPerConnection,
    },
    udp: { repliesPerSecond: config.udpRepliesPerSecond, replyBytesPerSecond: config.udpReplyBytesPerSecond },
    web: {
      allowedHosts: config.allowedHosts,
      allowedOrigins: config.allowedOrigins,
      headersTimeoutMs: config.headersTimeoutMs,
      bodyTimeoutMs: config.bodyTimeoutMs,
      idleTimeoutMs: config.idleTimeoutMs,
    },
    apiKey: server.apiKey ?? new ApiKey(config.apiKey),
    logger: server.logger,
    handler: server,
    routes: server.routes,
    counts: () => ({ ...server.stats(), readiness: server.readiness() }),
    onStdioPeerGone: options.onStdioPeerGone,
    stdio: options.stdio,
  });
}
