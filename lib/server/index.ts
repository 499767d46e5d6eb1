// Creating the server: the runtime opened, the start-up model loaded as "default", the engine
// ready for the transports. Start-up failures are RkllmErrors whose message is one paragraph the
// command line can print as it is.

import type { Logger } from 'pino';
import { RkllmError, isRkllmError } from '../errors';
import { openRuntime, type Runtime } from '../runtime/runtime';
import { RpcError } from '../rpc/errors';
import type { ServerConfig } from './config';
import { ServerCore } from './core';
import { createLogger } from './logger';
import { PathPolicy } from './paths';
import { Server } from './server';
import type { RkllmServer } from './types';

export { createLogger } from './logger';
export { defaultConfig, type ServerConfig, type TransportConfig } from './config';
export type { ClientDialer, DialedClient, RkllmServer, ServerStats } from './types';

async function openConfiguredRuntime(config: ServerConfig): Promise<Runtime> {
  try {
    return await openRuntime({ path: config.runtime, abi: config.runtimeAbi });
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

export async function createServer(config: ServerConfig, logger: Logger = createLogger(config.logLevel)): Promise<RkllmServer> {
  const runtime = await openConfiguredRuntime(config);
  const paths = new PathPolicy(config.modelsDirs, config.cacheDir, runtime.info.emulated);
  const core = new ServerCore(config, logger, runtime, paths);
  const server = new Server(core);
  logger.info({ runtime: runtime.info.path, abi: runtime.info.abi, emulated: runtime.info.emulated }, 'runtime opened');
  if (config.model !== undefined) {
    try {
      // The operator's own model is not confined to the models directories.
      await core.models.load({ model_path: config.model }, 'default');
    } catch (error) {
      const detail = error instanceof RpcError ? describeRpcError(error) : error instanceof Error ? error.message : String(error);
      throw new RkllmError(`Could not load the start-up model '${config.model}': ${detail}`, 'MODEL_INIT_FAILED');
    }
    logger.info({ handle: 'default', model: config.model }, 'model loaded');
  }
  return server;
}

function describeRpcError(error: RpcError): string {
  const data = error.data as { detail?: string; reason?: string; field?: string } | undefined;
  if (data?.detail) return data.detail;
  if (data?.reason) return data.field ? `${data.field}: ${data.reason}` : data.reason;
  return error.message;
}
