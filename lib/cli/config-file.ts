// The --config file: JSON with the keys of ServerConfig (see lib/serve/config.ts), any subset of
// them. `transports` may name a subset of transports and of their fields. `model` is the start-up
// model (a path, or an object of model settings, lib/core/model-settings.ts), or a list of models
// loaded on demand. Unknown keys and wrong types are errors that name the key, so a typo never
// silently falls back to a default.

import * as fs from 'fs';
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { ValueErrorType } from '@sinclair/typebox/errors';
import { Value } from '@sinclair/typebox/value';
import { ABI_SETTINGS } from '../native/structs';
import { isRkllmError } from '../errors';
import { ModelEntrySchema, checkSettings, type ModelEntry } from '../core/model-settings';
import type { ServerConfig } from '../serve/config';
import { UsageError } from './usage-error';

const Port = Type.Integer({ minimum: 0, maximum: 65535 });
const Count = Type.Integer({ minimum: 0 });
const Positive = Type.Integer({ minimum: 1 });

const TransportSettings = Type.Object(
  { enabled: Type.Optional(Type.Boolean()), host: Type.Optional(Type.String()), port: Type.Optional(Port) },
  { additionalProperties: false },
);

const ConfigFileSchema = Type.Object(
  {
    runtime: Type.Optional(Type.String()),
    runtimeAbi: Type.Optional(Type.Union(ABI_SETTINGS.map((name) => Type.Literal(name)))),
    // Checked on its own (checkModel), so a mistake inside a model's settings is named exactly.
    model: Type.Optional(Type.Unknown()),
    modelsDirs: Type.Optional(Type.Array(Type.String())),
    cacheDir: Type.Optional(Type.String()),
    promptCacheDir: Type.Optional(Type.String()),
    promptCacheBytes: Type.Optional(Count),
    maxQueue: Type.Optional(Count),
    maxLoadedModels: Type.Optional(Positive),
    maxLoadingModels: Type.Optional(Positive),
    requestTimeoutMs: Type.Optional(Count),
    maxMessageBytes: Type.Optional(Positive),
    maxBatchLength: Type.Optional(Positive),
    streamExpiryMs: Type.Optional(Positive),
    maxBufferedChunks: Type.Optional(Positive),
    maxStreams: Type.Optional(Positive),
    maxStreamsPerClient: Type.Optional(Positive),
    maxStreamBytes: Type.Optional(Positive),
    maxPollChunks: Type.Optional(Positive),
    modelControl: Type.Optional(Type.Union([Type.Literal('auto'), Type.Literal('any'), Type.Literal('owner')])),
    shutdownMode: Type.Optional(Type.Union([Type.Literal('cancel'), Type.Literal('finish')])),
    shutdownTimeoutMs: Type.Optional(Count),
    hostInitTimeoutMs: Type.Optional(Positive),
    hostRunTimeoutMs: Type.Optional(Positive),
    hostAbortTimeoutMs: Type.Optional(Positive),
    hostMaxFailures: Type.Optional(Positive),
    hostFailureWindowMs: Type.Optional(Positive),
    maxConnections: Type.Optional(Positive),
    maxConnectionsPerAddress: Type.Optional(Positive),
    headersTimeoutMs: Type.Optional(Positive),
    bodyTimeoutMs: Type.Optional(Positive),
    idleTimeoutMs: Type.Optional(Positive),
    allowedHosts: Type.Optional(Type.Array(Type.String())),
    allowedOrigins: Type.Optional(Type.Array(Type.String())),
    maxBufferedBytesPerConnection: Type.Optional(Positive),
    udpRepliesPerSecond: Type.Optional(Count),
    udpReplyBytesPerSecond: Type.Optional(Count),
    enableTestHooks: Type.Optional(Type.Boolean()),
    apiKey: Type.Optional(Type.String()),
    logLevel: Type.Optional(
      Type.Union(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((level) => Type.Literal(level))),
    ),
    logFormat: Type.Optional(Type.Union([Type.Literal('auto'), Type.Literal('pretty'), Type.Literal('json')])),
    transports: Type.Optional(
      Type.Object(
        {
          stdio: Type.Optional(TransportSettings),
          tcp: Type.Optional(TransportSettings),
          udp: Type.Optional(TransportSettings),
          http: Type.Optional(TransportSettings),
          websocket: Type.Optional(TransportSettings),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);

export type ConfigFile = Omit<Static<typeof ConfigFileSchema>, 'model'> & {
  logLevel?: ServerConfig['logLevel'];
  /** A start-up model, or (a list) the models loaded on demand. */
  model?: string | ModelEntry | (string | ModelEntry)[];
};

export function readConfigFile(file: string): ConfigFile {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    throw new UsageError(`--config ${file}: cannot read it (${(error as NodeJS.ErrnoException).code ?? String(error)})`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new UsageError(`--config ${file}: not valid JSON (${(error as Error).message})`);
  }
  return checkConfigFile(value, file);
}

export function checkConfigFile(value: unknown, file: string): ConfigFile {
  if (Value.Check(ConfigFileSchema, value)) {
    const model = (value as { model?: unknown }).model;
    if (model !== undefined) checkModel(model, file);
    return value as ConfigFile;
  }
  const first = Value.Errors(ConfigFileSchema, value).First();
  if (first === undefined) throw new UsageError(`--config ${file}: not a valid configuration`);
  const where = first.path === '' ? 'the file' : first.path.slice(1).replace(/\//g, '.');
  if (first.type === ValueErrorType.ObjectAdditionalProperties) {
    // The error carries the schema of the object holding the unknown key.
    const known = Object.keys((first.schema.properties ?? {}) as Record<string, unknown>);
    throw new UsageError(`--config ${file}: unknown setting '${where}'; the settings there are: ${known.join(', ')}`);
  }
  throw new UsageError(`--config ${file}: ${where}: expected ${describeSchema(first.schema)}, found ${JSON.stringify(first.value)}`);
}

function checkModel(model: unknown, file: string): void {
  const checkOne = (entry: unknown, where: string): void => {
    if (typeof entry === 'string') {
      if (entry === '') throw new UsageError(`--config ${file}: ${where}: expected a model path, found ""`);
      return;
    }
    try {
      checkSettings(ModelEntrySchema, entry, where);
    } catch (error) {
      if (isRkllmError(error, 'INVALID_ARGUMENT')) throw new UsageError(`--config ${file}: ${error.message}`);
      throw error;
    }
  };
  if (Array.isArray(model)) model.forEach((entry, index) => checkOne(entry, `model[${index}]`));
  else checkOne(model, 'model');
}

function describeSchema(schema: TSchema): string {
  if (Array.isArray(schema.anyOf)) return (schema.anyOf as TSchema[]).map(describeSchema).join(' or ');
  if (schema.const !== undefined) return JSON.stringify(schema.const);
  if (schema.type === 'integer') {
    const range = schema.maximum !== undefined ? ` from ${schema.minimum} to ${schema.maximum}` : ` of at least ${schema.minimum}`;
    return `an integer${range}`;
  }
  if (schema.type === 'array') return 'an array of strings';
  if (schema.type === 'object') return 'an object';
  return `a ${String(schema.type)}`;
}
