// Every setting of the server, with its default. The command line (lib/cli) fills this from
// flags over a JSON config file over these defaults; the composition root (serve.ts) hands each
// part its own share: the core its CoreSettings, each transport its endpoint and limits.

import * as os from 'os';
import * as path from 'path';
import type { CoreSettings } from '../core/core';
import type { ModelControlPolicy } from '../core/model-control';
import type { AbiSetting } from '../native/binding';
import type { ModelEntry } from '../core/model-settings';
import { DEFAULT_HOST_SETTINGS, type HostSettings } from '../host/settings';
import type { TransportName } from '../rpc/connection';
import type { TransportConfig } from '../transports/manager';

export type { TransportConfig } from '../transports/manager';

/** The core's settings (lib/core/core.ts), the model hosts' (lib/host/settings.ts; documented there) and the rest of the server's. */
export interface ServerConfig extends Omit<CoreSettings, 'modelControl'>, HostSettings {
  /** Path to librkllmrt, 'sim' for the emulated runtime, or undefined for the loader's search. */
  runtime?: string;
  /** The library's ABI or release number ('1.2', '1.3', '1.3.1', '1.2.1', ...); detected when unset. */
  runtimeAbi?: AbiSetting;
  /** Loaded at start-up under the handle "default": a path or 'sim:NAME', or its settings (lib/core/model-settings.ts). */
  model?: string | ModelEntry;

  /** The largest message accepted on any transport (a line, datagram, body or frame). */
  maxMessageBytes: number;
  /** The most requests one JSON-RPC batch may hold; a longer batch is refused whole. */
  maxBatchLength: number;
  /**
   * Who may make model-wide calls (abort, destroy, state): 'any' client, or 'owner' rules
   * (lib/core/model-control.ts); 'auto' is 'owner' once a network transport listens beyond loopback.
   */
  modelControl: ModelControlPolicy | 'auto';
  /** On SIGINT/SIGTERM: 'cancel' running requests, or 'finish' them (bounded by shutdownTimeoutMs). */
  shutdownMode: 'cancel' | 'finish';
  shutdownTimeoutMs: number;

  /** Open connections per transport (TCP, WebSocket, HTTP sockets; UDP peers). */
  maxConnections: number;
  /** Open TCP, WebSocket and HTTP sockets from one address, per transport (loopback counts too). */
  maxConnectionsPerAddress: number;
  /** HTTP and WebSocket: a request's headers must arrive within this. */
  headersTimeoutMs: number;
  /** HTTP and WebSocket: a whole request, body included, must arrive within this. */
  bodyTimeoutMs: number;
  /** HTTP and WebSocket: a keep-alive connection with no request in flight is closed after this. */
  idleTimeoutMs: number;
  /** HTTP and WebSocket: Host names accepted besides the server's own addresses and localhost. */
  allowedHosts: string[];
  /** HTTP and WebSocket: origins whose web pages may use the server (none by default). */
  allowedOrigins: string[];
  /** Bytes queued for one peer that is not reading before it is cut off. */
  maxBufferedBytesPerConnection: number;
  /** UDP: replies per second to one address (0 = no cap). */
  udpRepliesPerSecond: number;
  /** UDP: bytes per second to one peer (address:port), one second of burst (0 = no cap). */
  udpReplyBytesPerSecond: number;

  /**
   * When set, required on every network transport (lib/auth.ts): Bearer on HTTP and
   * WebSocket, an "auth" member of each request on TCP and UDP. stdio is exempt.
   */
  apiKey?: string;

  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  /** 'pretty' lines, 'json' lines, or 'auto': pretty when stderr is a terminal (lib/serve/logger.ts). */
  logFormat: 'auto' | 'pretty' | 'json';
  transports: Record<TransportName, TransportConfig>;
}

export const DEFAULT_PORTS: Record<Exclude<TransportName, 'stdio'>, number> = {
  tcp: 8080,
  udp: 8081,
  http: 8082,
  websocket: 8083,
};

/** Where prompt caches go by default: the user's cache directory (XDG), on the board's storage, not in RAM like /tmp often is. */
export function defaultPromptCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CACHE_HOME !== undefined && path.isAbsolute(env.XDG_CACHE_HOME) ? env.XDG_CACHE_HOME : path.join(os.homedir(), '.cache');
  return path.join(base, 'rkllm-serve', 'prompt-caches');
}

/**
 * The prompt caches' default budget: 1 GiB. A cache costs the model's KV bytes per token (28 KiB
 * for Qwen2.5-1.5B, about 57 KiB for a 7B), so this holds 4 to 9 full 4,096-token conversations,
 * a small part of a board's 32-256 GB of eMMC or NVMe.
 */
export const DEFAULT_PROMPT_CACHE_BYTES = 1024 * 1024 * 1024;

export function defaultConfig(): ServerConfig {
  const host = '127.0.0.1';
  return {
    modelsDirs: [],
    promptCacheDir: defaultPromptCacheDir(),
    promptCacheBytes: DEFAULT_PROMPT_CACHE_BYTES,
    models: [],
    modelDefaults: {},
    maxQueue: 64,
    maxLoadedModels: 8,
    maxLoadingModels: 4,
    requestTimeoutMs: 0,
    maxMessageBytes: 1024 * 1024,
    maxBatchLength: 1000,
    streamExpiryMs: 60_000,
    maxBufferedChunks: 10_000,
    maxStreams: 1024,
    maxStreamsPerClient: 64,
    maxStreamBytes: 64 * 1024 * 1024,
    maxPollChunks: 1000,
    modelControl: 'auto',
    shutdownMode: 'cancel',
    shutdownTimeoutMs: 1500,
    ...DEFAULT_HOST_SETTINGS,
    maxConnections: 1024,
    // Half the default bound: one address never holds every slot, so another (a health probe) gets in.
    maxConnectionsPerAddress: 512,
    headersTimeoutMs: 5000,
    bodyTimeoutMs: 10_000,
    idleTimeoutMs: 5000,
    allowedHosts: [],
    allowedOrigins: [],
    maxBufferedBytesPerConnection: 8 * 1024 * 1024,
    udpRepliesPerSecond: 0,
    udpReplyBytesPerSecond: 1024 * 1024,
    enableTestHooks: false,
    logLevel: 'info',
    logFormat: 'auto',
    transports: {
      stdio: { enabled: true, host: '', port: 0 },
      tcp: { enabled: true, host, port: DEFAULT_PORTS.tcp },
      udp: { enabled: true, host, port: DEFAULT_PORTS.udp },
      http: { enabled: true, host, port: DEFAULT_PORTS.http },
      websocket: { enabled: true, host, port: DEFAULT_PORTS.websocket },
    },
  };
}

const NETWORK_TRANSPORTS = ['tcp', 'udp', 'http', 'websocket'] as const;

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.') || host.startsWith('::ffff:127.');
}

/** The policy 'auto' stands for: 'owner' as soon as a network transport is reachable beyond this machine. */
export function modelControlPolicy(config: Pick<ServerConfig, 'modelControl' | 'transports'>): ModelControlPolicy {
  if (config.modelControl !== 'auto') return config.modelControl;
  const exposed = NETWORK_TRANSPORTS.some((name) => config.transports[name].enabled && !isLoopback(config.transports[name].host));
  return exposed ? 'owner' : 'any';
}
