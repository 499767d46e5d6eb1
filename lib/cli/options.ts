// The command line of rkllm-serve (yargs 17) and how it becomes a ServerConfig: each setting is
// taken from the command line, else from the --config file, else from defaultConfig(). Flags have
// no yargs defaults for that reason; --help shows the real defaults through defaultDescription.

import yargs from 'yargs';
import { TRANSPORT_NAMES, type TransportName } from '../rpc/connection';
import { ABI_SETTINGS } from '../native/structs';
import { SIM_RUNTIME } from '../runtime/emulated';
import { DEFAULT_PORTS, defaultConfig, type ServerConfig } from '../serve/config';
import { DEFAULT_CONTEXT_LENGTH, DEFAULT_MAX_NEW_TOKENS, type ModelEntry, type ModelSettings } from '../core/model-settings';
import { CHAT_TEMPLATE_PRESET_NAMES } from '../core/chat-templates';
import { readConfigFile, type ConfigFile } from './config-file';
import { UsageError } from './usage-error';

/** What `--runtime sim` serves when no --model is given: the instant sim model, as "default". */
export const DEFAULT_SIM_MODEL = 'sim:instant';
/** `--model none` starts without a model (clients load one with rkllm_init). */
export const NO_MODEL = 'none';

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
const LOG_FORMATS = ['auto', 'pretty', 'json'] as const;
const ABIS = ABI_SETTINGS;
const MODEL_CONTROL = ['auto', 'any', 'owner'] as const;
/** The environment variable the API key may come from instead of --api-key. */
export const API_KEY_ENV = 'RKLLM_SERVE_API_KEY';

/** The flag that moves each network transport, and the one that switches each transport off. */
const PORT_FLAGS = { tcp: 'tcp-port', udp: 'udp-port', http: 'http-port', websocket: 'ws-port' } as const;
const DISABLE_FLAGS: Record<TransportName, string> = {
  stdio: 'disable-stdio',
  tcp: 'disable-tcp',
  udp: 'disable-udp',
  http: 'disable-http',
  websocket: 'disable-ws',
};

export interface ParsedCommandLine {
  readonly config: ServerConfig;
  /** --print-systemd-unit: print the unit file for this installation and exit. */
  readonly printSystemdUnit: boolean;
  /** Said at start-up when stdin is a terminal: whether stdio is served there, and how to change it. */
  readonly stdioNote?: string;
}

/** What the command line depends on besides its arguments. */
export interface CommandLineEnvironment {
  /** Whether stdin is a terminal: stdio is then off unless asked for (a person typing there is no JSON-RPC client). */
  readonly stdinIsTty?: boolean;
}

function commandLine(args: readonly string[], version: string) {
  const defaults = defaultConfig();
  return yargs([...args])
    .scriptName('rkllm-serve')
    .usage(
      '$0 [options]\n\n' +
        'Serves an RKLLM model (librkllmrt on Rockchip NPUs, or the built-in emulated runtime) over\n' +
        'JSON-RPC 2.0 on stdio, TCP, UDP, HTTP and WebSocket at once. Logs go to stderr; stdout\n' +
        'carries the stdio transport only.',
    )
    .option('runtime', {
      type: 'string',
      group: 'Runtime and model:',
      describe: "librkllmrt to load: a path, or 'sim' for the emulated runtime",
      defaultDescription: "librkllmrt.so from the loader's search path",
      requiresArg: true,
    })
    .option('runtime-abi', {
      type: 'string',
      group: 'Runtime and model:',
      describe: 'ABI of that library: its release (1.2.1, 1.2.2, 1.2.3, 1.3.0, 1.3.1), or 1.2 (any 1.2.x), or 1.3 (a 1.3.x: the file is asked which)',
      defaultDescription: 'detected',
      requiresArg: true,
    })
    .option('model', {
      type: 'string',
      group: 'Runtime and model:',
      describe: `model loaded at start-up as handle "default": a .rkllm path, 'sim:NAME', or '${NO_MODEL}'`,
      defaultDescription: `${DEFAULT_SIM_MODEL} with --runtime sim, else none`,
      requiresArg: true,
    })
    .option('models-dir', {
      type: 'string',
      array: true,
      group: 'Runtime and model:',
      describe: 'directory clients may load models and LoRA adapters from (repeatable)',
      defaultDescription: 'none',
      requiresArg: true,
    })
    .option('cache-dir', {
      type: 'string',
      group: 'Runtime and model:',
      describe: 'directory clients may keep prompt caches in',
      defaultDescription: 'none',
      requiresArg: true,
    })
    .option('prompt-cache-dir', {
      type: 'string',
      group: 'Runtime and model:',
      describe: "directory the chat APIs keep their prompt caches in (the server's own: one folder per run, removed at exit)",
      defaultDescription: '$XDG_CACHE_HOME/rkllm-serve/prompt-caches',
      requiresArg: true,
    })
    .option('prompt-cache-bytes', limitOption('bytes of prompt caches kept over every model, least recently used out first (0 = no prompt caches)', defaults.promptCacheBytes ?? 0))
    .option('ctx-size', numberModelOption('context length in tokens (max_context_len), at most what the model was converted with', String(DEFAULT_CONTEXT_LENGTH)))
    .option('max-new-tokens', numberModelOption('tokens one answer may take', String(DEFAULT_MAX_NEW_TOKENS)))
    .option('temp', numberModelOption('sampling temperature', "the runtime's (0.8)"))
    .option('top-k', numberModelOption('sampling: keep the k likeliest tokens', "the runtime's (40)"))
    .option('top-p', numberModelOption('sampling: nucleus probability', "the runtime's (0.9)"))
    .option('repeat-penalty', numberModelOption('penalty on repeated tokens', "the runtime's (1.1)"))
    .option('presence-penalty', numberModelOption('penalty on any token seen so far', "the runtime's (0)"))
    .option('frequency-penalty', numberModelOption("penalty growing with a token's count", "the runtime's (0)"))
    .option('n-keep', numberModelOption('tokens kept when the runtime shifts the context', "the runtime's (0)"))
    .option('cpu-mask', stringModelOption('CPUs the runtime may use (0xF0: the big cores of an RK3588/RK3576)', "the runtime's"))
    .option('embed-flash', { type: 'boolean', group: 'Model settings:', describe: 'keep the embedding table in flash, not memory' })
    .option('chat-template', stringModelOption(`chat template preset (${CHAT_TEMPLATE_PRESET_NAMES.join(', ')})`, 'guessed from the model name'))
    .option('truncation', stringModelOption("a chat longer than the context: 'refuse' or 'drop_oldest'", 'refuse (OpenAI API)'))
    .option('keep-alive', stringModelOption('how long a model loaded on demand stays after its last request: seconds, 30s, 5m, 1h; 0 = unload at once, -1 = never', '5m; the start-up model: -1'))
    .option('alias', {
      type: 'string',
      array: true,
      group: 'Model settings:',
      describe: 'further name of the start-up model (repeatable; the first is the name /v1/models lists)',
      requiresArg: true,
    })
    .option('lora', {
      type: 'string',
      array: true,
      group: 'Model settings:',
      describe: "LoRA adapter loaded with the start-up model (repeatable; named from its file)",
      requiresArg: true,
    })
    .option('host', {
      type: 'string',
      group: 'Transports:',
      describe: 'address the network transports bind to (0.0.0.0 serves the network)',
      defaultDescription: defaults.transports.tcp.host,
      requiresArg: true,
    })
    .option('tcp-port', portOption('TCP', DEFAULT_PORTS.tcp))
    .option('udp-port', portOption('UDP', DEFAULT_PORTS.udp))
    .option('http-port', portOption('HTTP', DEFAULT_PORTS.http))
    .option('ws-port', portOption('WebSocket', DEFAULT_PORTS.websocket))
    .option('enable-stdio', {
      type: 'boolean' as const,
      group: 'Transports:',
      describe: 'serve stdio even when stdin is a terminal',
      defaultDescription: 'on, but off when stdin is a terminal',
    })
    .option('disable-stdio', disableOption('stdio'))
    .option('disable-tcp', disableOption('TCP'))
    .option('disable-udp', disableOption('UDP'))
    .option('disable-http', disableOption('HTTP'))
    .option('disable-ws', disableOption('WebSocket'))
    .option('max-queue', limitOption('runs waiting per model behind the running one', defaults.maxQueue))
    .option('max-loaded-models', limitOption('models loaded or loading at once, the start-up model included', defaults.maxLoadedModels))
    .option('max-loading-models', limitOption('rkllm_init calls in flight at once', defaults.maxLoadingModels))
    .option('request-timeout', limitOption('ms a run may queue and run before it is cancelled (0 = no limit)', defaults.requestTimeoutMs))
    .option('max-message-bytes', limitOption('largest message accepted (line, datagram, body, frame)', defaults.maxMessageBytes))
    .option('max-batch-length', limitOption('most requests in one JSON-RPC batch', defaults.maxBatchLength))
    .option('max-connections', limitOption('open connections per transport (UDP: known peers)', defaults.maxConnections))
    .option(
      'max-connections-per-address',
      limitOption('open TCP, HTTP and WebSocket connections from one address, per transport (loopback too)', defaults.maxConnectionsPerAddress),
    )
    .option('headers-timeout', limitOption('ms an HTTP or WebSocket request has to send its headers (408 beyond)', defaults.headersTimeoutMs))
    .option('body-timeout', limitOption('ms an HTTP request has to arrive whole, body included (408 beyond)', defaults.bodyTimeoutMs))
    .option('idle-timeout', limitOption('ms an HTTP keep-alive connection may wait for its next request', defaults.idleTimeoutMs))
    .option(
      'max-buffered-bytes',
      limitOption('bytes of unread output per connection before it is cut off', defaults.maxBufferedBytesPerConnection),
    )
    .option('udp-replies-per-second', limitOption('datagrams sent per second to one address (0 = no cap)', defaults.udpRepliesPerSecond))
    .option('udp-reply-bytes-per-second', limitOption('bytes sent per second to one UDP peer (0 = no cap)', defaults.udpReplyBytesPerSecond))
    .option('stream-expiry', limitOption('ms a stream stays pollable after its last poll', defaults.streamExpiryMs))
    .option('max-buffered-chunks', limitOption('chunks kept per stream for poll', defaults.maxBufferedChunks))
    .option('max-streams', limitOption('streams kept at once (the oldest finished make room)', defaults.maxStreams))
    .option('max-streams-per-client', limitOption('streams one connection keeps at once', defaults.maxStreamsPerClient))
    .option('max-stream-bytes', limitOption('bytes of stream chunks kept over every stream (estimated)', defaults.maxStreamBytes))
    .option('max-poll-chunks', limitOption('most chunks one poll answers', defaults.maxPollChunks))
    .option('model-control', {
      type: 'string',
      group: 'Limits:',
      describe: "who may abort, destroy or change a model: 'any' client, 'owner' rules, or 'auto' (owner beyond loopback)",
      defaultDescription: defaults.modelControl,
      requiresArg: true,
    })
    .option('shutdown-mode', {
      type: 'string',
      group: 'Limits:',
      describe: "on SIGINT/SIGTERM: 'cancel' running requests or let them 'finish'",
      defaultDescription: defaults.shutdownMode,
      requiresArg: true,
    })
    .option('shutdown-timeout', limitOption('ms shutdown waits for runs to end', defaults.shutdownTimeoutMs))
    .option('host-init-timeout', limitOption("ms a model host's rkllm_init may take before it is declared hung", defaults.hostInitTimeoutMs))
    .option('host-run-timeout', limitOption('ms a run or call may go without a callback before its host is declared hung', defaults.hostRunTimeoutMs))
    .option('host-abort-timeout', limitOption('ms a run asked to stop may take to end before its host is declared hung', defaults.hostAbortTimeoutMs))
    .option('host-max-failures', limitOption('host failures of one model within --host-failure-window before it is failed', defaults.hostMaxFailures))
    .option('host-failure-window', limitOption('ms over which --host-max-failures counts', defaults.hostFailureWindowMs))
    .option('allowed-hosts', {
      type: 'string',
      array: true,
      group: 'Browser protections:',
      describe: "Host names HTTP and WebSocket accept besides this machine's addresses and localhost ('*': any; '.lan': a domain)",
      defaultDescription: 'none',
      requiresArg: true,
    })
    .option('allowed-origins', {
      type: 'string',
      array: true,
      group: 'Browser protections:',
      describe: "origins (http://host:port) whose web pages may use HTTP and WebSocket ('*': any)",
      defaultDescription: 'none',
      requiresArg: true,
    })
    .option('api-key', {
      type: 'string',
      group: 'Other:',
      describe: `key every network transport requires (HTTP/WebSocket: Authorization: Bearer; TCP/UDP: "auth" in each request); also ${API_KEY_ENV}`,
      defaultDescription: 'none',
      requiresArg: true,
    })
    .option('config', {
      type: 'string',
      group: 'Other:',
      describe: 'JSON file of settings (keys of ServerConfig); the command line wins over it',
      requiresArg: true,
    })
    .option('enable-test-hooks', {
      type: 'boolean',
      group: 'Other:',
      describe: 'serve test_connection_drop (for test suites only)',
      defaultDescription: 'false',
    })
    .option('print-systemd-unit', {
      type: 'boolean',
      group: 'Other:',
      describe: 'print a systemd unit that runs this installation on boot, and exit (docs/install.md)',
    })
    .option('log-level', {
      type: 'string',
      group: 'Other:',
      describe: `${LOG_LEVELS.join(', ')}`,
      defaultDescription: defaults.logLevel,
      requiresArg: true,
    })
    .option('log-format', {
      type: 'string',
      group: 'Other:',
      describe: 'auto (pretty when stderr is a terminal, else json), pretty, json',
      defaultDescription: defaults.logFormat,
      requiresArg: true,
    })
    .example('$0 --runtime sim', 'the emulated runtime and sim:instant on all five transports (ports 8080-8083)')
    .example('$0 --runtime /usr/lib/librkllmrt.so --model /models/qwen2.5-1.5b.rkllm', 'a real model on a Rockchip board')
    .example('$0 --runtime sim --model sim:rk3588-qwen2.5-1.5b --disable-udp', 'RK3588 timing, no UDP')
    .example('$0 --runtime sim --tcp-port 0 --udp-port 0 --http-port 0 --ws-port 0', 'free ports, logged on stderr')
    .example('$0 --runtime sim --disable-tcp --disable-udp --disable-http --disable-ws', 'stdio only, for an editor or agent')
    .example('$0 --config server.json --log-level debug', 'settings from a file, one overridden')
    .strict()
    .version(version)
    .help()
    .alias('h', 'help')
    .alias('v', 'version')
    .wrap(Math.min(110, process.stdout.columns ?? 110))
    .fail((message, error) => {
      throw error ?? new UsageError(message);
    });
}

function numberModelOption(describe: string, defaultDescription: string) {
  return { type: 'number' as const, group: 'Model settings:', describe, defaultDescription, requiresArg: true };
}

function stringModelOption(describe: string, defaultDescription: string) {
  return { type: 'string' as const, group: 'Model settings:', describe, defaultDescription, requiresArg: true };
}

function portOption(what: string, port: number) {
  return {
    type: 'number' as const,
    group: 'Transports:',
    describe: `${what} port (0 picks a free one)`,
    defaultDescription: String(port),
    requiresArg: true,
  };
}

function disableOption(what: string) {
  return { type: 'boolean' as const, group: 'Transports:', describe: `do not serve ${what}` };
}

function limitOption(describe: string, value: number) {
  return { type: 'number' as const, group: 'Limits:', describe, defaultDescription: String(value), requiresArg: true };
}

/** Parses the arguments (without node and the script) into a complete ServerConfig. */
export function parseCommandLine(args: readonly string[], version: string, environment: CommandLineEnvironment = {}): ParsedCommandLine {
  const argv = commandLine(args, version).parseSync();
  const file: ConfigFile = argv.config !== undefined ? readConfigFile(argv.config) : {};
  const config = mergeSettings(file, argv);
  const stdioNote = settleStdio(config, file, argv, environment.stdinIsTty === true);
  return { config, printSystemdUnit: argv['print-systemd-unit'] === true, stdioNote };
}

/**
 * stdio's default: on when stdin is a pipe, a socket, a file or /dev/null (a parent process
 * speaks JSON-RPC there), off when it is a terminal, unless the only transport left is stdio.
 * --enable-stdio, --disable-stdio or transports.stdio.enabled in the file decide instead.
 */
function settleStdio(config: ServerConfig, file: ConfigFile, flags: Flags, stdinIsTty: boolean): string | undefined {
  if (flags['enable-stdio'] === true && flags['disable-stdio'] === true) throw new UsageError('--enable-stdio and --disable-stdio contradict each other; give one');
  if (flags['enable-stdio'] === true) config.transports.stdio.enabled = true;
  const decided = flags['enable-stdio'] !== undefined || flags['disable-stdio'] !== undefined || file.transports?.stdio?.enabled !== undefined;
  if (decided || !stdinIsTty || !config.transports.stdio.enabled) return undefined;
  const others = TRANSPORT_NAMES.some((name) => name !== 'stdio' && config.transports[name].enabled);
  if (!others) return 'stdin is a terminal and every other transport is off, so stdio serves it: one JSON-RPC request per line';
  config.transports.stdio.enabled = false;
  return 'stdio is off because stdin is a terminal; --enable-stdio serves JSON-RPC there anyway';
}

type Flags = ReturnType<ReturnType<typeof commandLine>['parseSync']>;

function mergeSettings(file: ConfigFile, flags: Flags): ServerConfig {
  const config = defaultConfig();

  // The file over the defaults.
  const { transports: fileTransports, model: fileModel, ...fileTop } = file;
  Object.assign(config, fileTop);
  const asEntry = (model: string | ModelEntry): ModelEntry => (typeof model === 'string' ? { path: model } : model);
  if (Array.isArray(fileModel)) config.models = fileModel.map(asEntry);
  else if (fileModel !== undefined) config.model = asEntry(fileModel);
  for (const name of TRANSPORT_NAMES) Object.assign(config.transports[name], fileTransports?.[name] ?? {});

  // The command line over both.
  config.runtime = flags.runtime ?? config.runtime;
  if (flags['runtime-abi'] !== undefined) config.runtimeAbi = oneOf('--runtime-abi', flags['runtime-abi'], ABIS, 'unknown ABI');
  if (flags.model !== undefined) config.model = flags.model;
  config.modelsDirs = flags['models-dir']?.map(String) ?? config.modelsDirs;
  config.cacheDir = flags['cache-dir'] ?? config.cacheDir;
  config.promptCacheDir = flags['prompt-cache-dir'] ?? config.promptCacheDir;
  config.promptCacheBytes = integerFlag(flags, 'prompt-cache-bytes', 0) ?? config.promptCacheBytes;
  if (flags.host !== undefined) {
    for (const name of TRANSPORT_NAMES) if (name !== 'stdio') config.transports[name].host = flags.host;
  }
  for (const [name, flag] of Object.entries(PORT_FLAGS) as [keyof typeof PORT_FLAGS, string][]) {
    const port = flags[flag] as number | undefined;
    if (port !== undefined) config.transports[name].port = integer(`--${flag}`, port, 0, 65535);
  }
  for (const name of TRANSPORT_NAMES) {
    if (flags[DISABLE_FLAGS[name]] === true) config.transports[name].enabled = false;
  }
  config.maxQueue = integerFlag(flags, 'max-queue', 0) ?? config.maxQueue;
  config.maxLoadedModels = integerFlag(flags, 'max-loaded-models', 1) ?? config.maxLoadedModels;
  config.maxLoadingModels = integerFlag(flags, 'max-loading-models', 1) ?? config.maxLoadingModels;
  config.requestTimeoutMs = integerFlag(flags, 'request-timeout', 0) ?? config.requestTimeoutMs;
  config.maxMessageBytes = integerFlag(flags, 'max-message-bytes', 1) ?? config.maxMessageBytes;
  config.maxBatchLength = integerFlag(flags, 'max-batch-length', 1) ?? config.maxBatchLength;
  config.maxConnections = integerFlag(flags, 'max-connections', 1) ?? config.maxConnections;
  config.maxConnectionsPerAddress = integerFlag(flags, 'max-connections-per-address', 1) ?? config.maxConnectionsPerAddress;
  config.headersTimeoutMs = integerFlag(flags, 'headers-timeout', 1) ?? config.headersTimeoutMs;
  config.bodyTimeoutMs = integerFlag(flags, 'body-timeout', 1) ?? config.bodyTimeoutMs;
  config.idleTimeoutMs = integerFlag(flags, 'idle-timeout', 1) ?? config.idleTimeoutMs;
  config.allowedHosts = listFlag(flags['allowed-hosts']) ?? config.allowedHosts;
  config.allowedOrigins = listFlag(flags['allowed-origins']) ?? config.allowedOrigins;
  for (const origin of config.allowedOrigins) checkOrigin(origin);
  config.maxBufferedBytesPerConnection = integerFlag(flags, 'max-buffered-bytes', 1) ?? config.maxBufferedBytesPerConnection;
  config.udpRepliesPerSecond = integerFlag(flags, 'udp-replies-per-second', 0) ?? config.udpRepliesPerSecond;
  config.udpReplyBytesPerSecond = integerFlag(flags, 'udp-reply-bytes-per-second', 0) ?? config.udpReplyBytesPerSecond;
  config.streamExpiryMs = integerFlag(flags, 'stream-expiry', 1) ?? config.streamExpiryMs;
  config.maxBufferedChunks = integerFlag(flags, 'max-buffered-chunks', 1) ?? config.maxBufferedChunks;
  config.maxStreams = integerFlag(flags, 'max-streams', 1) ?? config.maxStreams;
  config.maxStreamsPerClient = integerFlag(flags, 'max-streams-per-client', 1) ?? config.maxStreamsPerClient;
  config.maxStreamBytes = integerFlag(flags, 'max-stream-bytes', 1) ?? config.maxStreamBytes;
  config.maxPollChunks = integerFlag(flags, 'max-poll-chunks', 1) ?? config.maxPollChunks;
  if (flags['model-control'] !== undefined) {
    config.modelControl = oneOf('--model-control', flags['model-control'], MODEL_CONTROL, 'unknown policy');
  }
  config.shutdownTimeoutMs = integerFlag(flags, 'shutdown-timeout', 0) ?? config.shutdownTimeoutMs;
  config.hostInitTimeoutMs = integerFlag(flags, 'host-init-timeout', 1) ?? config.hostInitTimeoutMs;
  config.hostRunTimeoutMs = integerFlag(flags, 'host-run-timeout', 1) ?? config.hostRunTimeoutMs;
  config.hostAbortTimeoutMs = integerFlag(flags, 'host-abort-timeout', 1) ?? config.hostAbortTimeoutMs;
  config.hostMaxFailures = integerFlag(flags, 'host-max-failures', 1) ?? config.hostMaxFailures;
  config.hostFailureWindowMs = integerFlag(flags, 'host-failure-window', 1) ?? config.hostFailureWindowMs;
  if (flags['shutdown-mode'] !== undefined) {
    config.shutdownMode = oneOf('--shutdown-mode', flags['shutdown-mode'], ['cancel', 'finish'] as const, 'unknown mode');
  }
  if (flags['enable-test-hooks'] !== undefined) config.enableTestHooks = flags['enable-test-hooks'];
  // The environment keeps the key out of `ps` output; the flag still wins over it.
  const apiKey = flags['api-key'] ?? process.env[API_KEY_ENV] ?? config.apiKey;
  config.apiKey = apiKey === undefined || apiKey === '' ? undefined : apiKey;
  if (flags['log-level'] !== undefined) config.logLevel = oneOf('--log-level', flags['log-level'], LOG_LEVELS, 'unknown level');
  if (flags['log-format'] !== undefined) config.logFormat = oneOf('--log-format', flags['log-format'], LOG_FORMATS, 'unknown format');

  // What the model setting means once everything is known. A list of models in the file is the
  // catalog: no sim model is added beside it.
  const modelPath = typeof config.model === 'string' ? config.model : config.model?.path;
  if (modelPath === NO_MODEL || modelPath === '') config.model = undefined;
  else if (config.model === undefined && config.runtime === SIM_RUNTIME && config.models.length === 0) config.model = DEFAULT_SIM_MODEL;
  config.modelDefaults = modelFlags(flags);
  const startupOnly = startupFlags(flags);
  if (startupOnly) {
    if (config.model === undefined) throw new UsageError(`--${startupOnly.flag} applies to the start-up model, and there is none (--model)`);
    const entry: ModelEntry = typeof config.model === 'string' ? { path: config.model } : { ...config.model };
    if (startupOnly.aliases) entry.aliases = [...(entry.aliases ?? []), ...startupOnly.aliases];
    if (startupOnly.lora) entry.lora = [...(entry.lora ?? []), ...startupOnly.lora.map((file) => ({ path: file }))];
    config.model = entry;
  }

  if (!TRANSPORT_NAMES.some((name) => config.transports[name].enabled)) {
    throw new UsageError('every transport is disabled; leave at least one of stdio, TCP, UDP, HTTP and WebSocket on');
  }
  return config;
}

/** The model flags that are settings of every model (the start-up model's over its file settings, the others' under their own). */
function modelFlags(flags: Flags): ModelSettings {
  const settings: ModelSettings = {};
  const set = <K extends keyof ModelSettings>(key: K, value: ModelSettings[K] | undefined): void => {
    if (value !== undefined) settings[key] = value;
  };
  set('max_context_len', integerFlag(flags, 'ctx-size', 1));
  set('max_new_tokens', integerFlag(flags, 'max-new-tokens', 1));
  set('temperature', numberFlag(flags, 'temp'));
  set('top_k', integerFlag(flags, 'top-k', 0));
  set('top_p', numberFlag(flags, 'top-p'));
  set('repeat_penalty', numberFlag(flags, 'repeat-penalty'));
  set('presence_penalty', numberFlag(flags, 'presence-penalty'));
  set('frequency_penalty', numberFlag(flags, 'frequency-penalty'));
  set('n_keep', integerFlag(flags, 'n-keep', 0));
  const mask = flags['cpu-mask'];
  if (mask !== undefined) {
    const value = /^0[xX][0-9a-fA-F]{1,2}$/.test(mask) ? Number.parseInt(mask.slice(2), 16) : /^[0-9]+$/.test(mask) ? Number(mask) : NaN;
    if (!(value >= 1 && value <= 255)) throw new UsageError(`--cpu-mask must be a CPU mask from 0x01 to 0xFF (0xF0: CPU4-CPU7, the big cores of an RK3588), found '${mask}'`);
    settings.enabled_cpus_mask = value;
  }
  if (flags['embed-flash'] !== undefined) settings.embed_flash = flags['embed-flash'];
  if (flags['chat-template'] !== undefined) {
    settings.chat_template = oneOf('--chat-template', flags['chat-template'], CHAT_TEMPLATE_PRESET_NAMES, 'unknown preset');
  }
  if (flags.truncation !== undefined) settings.truncation = oneOf('--truncation', flags.truncation, ['refuse', 'drop_oldest'] as const, 'unknown policy');
  const keepAlive = flags['keep-alive'];
  if (keepAlive !== undefined) {
    if (!/^-?[0-9]+(\.[0-9]+)?(ms|s|m|h)?$/.test(keepAlive)) throw new UsageError(`--keep-alive must be seconds or a duration (30s, 5m, 1h; 0 = unload at once, -1 = never), found '${keepAlive}'`);
    settings.keep_alive = keepAlive;
  }
  return settings;
}

/** --alias and --lora: of the start-up model only. */
function startupFlags(flags: Flags): { flag: string; aliases?: string[]; lora?: string[] } | undefined {
  const aliases = listFlag(flags.alias);
  const lora = flags.lora?.map(String);
  if (aliases === undefined && lora === undefined) return undefined;
  return { flag: aliases !== undefined ? 'alias' : 'lora', aliases, lora };
}

function numberFlag(flags: Flags, flag: string): number | undefined {
  const value = flags[flag] as number | undefined;
  if (value === undefined) return undefined;
  if (!Number.isFinite(value)) throw new UsageError(`--${flag} must be a number`);
  return value;
}

function integerFlag(flags: Flags, flag: string, min: number): number | undefined {
  const value = flags[flag] as number | undefined;
  return value === undefined ? undefined : integer(`--${flag}`, value, min, Number.MAX_SAFE_INTEGER);
}

/** A repeatable flag whose values may also be comma-separated lists. */
function listFlag(values: readonly (string | number)[] | undefined): string[] | undefined {
  if (values === undefined) return undefined;
  return values.flatMap((value) => String(value).split(',')).map((value) => value.trim()).filter((value) => value !== '');
}

/** An origin is what a browser sends: scheme://host[:port], nothing after it. */
function checkOrigin(origin: string): void {
  if (origin === '*' || origin === 'null') return;
  let parsed: URL | undefined;
  try {
    parsed = new URL(origin);
  } catch {
    parsed = undefined;
  }
  if (parsed === undefined || parsed.origin === 'null' || parsed.origin !== origin.toLowerCase().replace(/\/$/, '')) {
    throw new UsageError(`--allowed-origins: '${origin}' is not an origin; write it as a browser sends it, scheme://host[:port] (http://192.168.1.20:3000)`);
  }
}

function integer(flag: string, value: number, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `an integer of at least ${min}` : `an integer from ${min} to ${max}`;
    throw new UsageError(`${flag} must be ${range}`);
  }
  return value;
}

function oneOf<T extends string>(flag: string, value: string, allowed: readonly T[], what: string): T {
  if ((allowed as readonly string[]).includes(value)) return value as T;
  throw new UsageError(`${flag}: ${what} '${value}'; expected one of ${allowed.join(', ')}`);
}
