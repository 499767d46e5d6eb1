// The settings of one model, written once as a TypeBox schema: the command line's model flags,
// the config file's `model` (an object or a list of them), a catalog file's sidecar and the core
// all read this shape. The RKLLMParam a model is loaded with is derived from it (paramOf), over
// the runtime's own defaults for whatever it leaves out; the rest (names, template, keep-alive,
// truncation, LoRA adapters) is the server's, read by the core and the front ends.
//
// Keys are snake_case and, where a setting is an RKLLMParam member, named as that member is, so a
// board owner can carry values over from Rockchip's examples.

import * as path from 'path';
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { ValueErrorType } from '@sinclair/typebox/errors';
import { Value } from '@sinclair/typebox/value';
import { invalidArgument } from '../errors';
import { ChatTemplateSettingSchema, TruncationSchema } from './chat-templates';
import type { PartialParam } from '../runtime/param';

/** The context a model gets when its settings name none: room for a real chat (the runtime's own default is 512). */
export const DEFAULT_CONTEXT_LENGTH = 4096;
/** Tokens one answer may take when nothing says otherwise (the runtime's own default is 256). */
export const DEFAULT_MAX_NEW_TOKENS = 1024;
/** How long a model loaded on demand stays after its last request, like Ollama's default. */
export const DEFAULT_KEEP_ALIVE_MS = 5 * 60_000;
/** keep_alive of a model that is never unloaded by the server. */
export const KEEP_FOREVER = -1;

const Float = (description: string) => Type.Number({ description });
const Count = (description: string) => Type.Integer({ minimum: 0, maximum: 2147483647, description });

/** A LoRA adapter loaded right after the model (rkllm_load_lora). */
export const LoraSetting = Type.Object(
  {
    path: Type.String({ minLength: 1, description: "The adapter's file; relative to the model's own directory" }),
    name: Type.Optional(Type.String({ minLength: 1, description: 'The name runs use; default: the file name without .rkllm' })),
    scale: Type.Optional(Type.Number({ description: 'Default 1' })),
  },
  { additionalProperties: false },
);

/** Every setting of a model but its file. */
const settingsMembers = {
  name: Type.Optional(Type.String({ minLength: 1, description: 'The name requests use; default: from the file name' })),
  aliases: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { description: 'Further names the model answers to' })),
  max_context_len: Type.Optional(
    Type.Integer({ minimum: 1, maximum: 2147483647, description: `Context length in tokens (default ${DEFAULT_CONTEXT_LENGTH}); at most what the model was converted with` }),
  ),
  max_new_tokens: Type.Optional(
    Type.Integer({ minimum: 1, maximum: 2147483647, description: `Tokens one answer may take (default ${DEFAULT_MAX_NEW_TOKENS})` }),
  ),
  top_k: Type.Optional(Count('Sampling: keep the k likeliest tokens')),
  top_p: Type.Optional(Float('Sampling: nucleus probability')),
  temperature: Type.Optional(Float('Sampling temperature')),
  repeat_penalty: Type.Optional(Float('Penalty on repeated tokens')),
  frequency_penalty: Type.Optional(Float('Penalty growing with a token’s count so far')),
  presence_penalty: Type.Optional(Float('Penalty on any token seen so far')),
  mirostat: Type.Optional(Type.Integer({ minimum: 0, maximum: 2, description: 'Mirostat sampling: 0 off, 1 or 2' })),
  mirostat_tau: Type.Optional(Float('Mirostat target entropy')),
  mirostat_eta: Type.Optional(Float('Mirostat learning rate')),
  n_keep: Type.Optional(Count('Tokens of the context kept when the runtime shifts it')),
  skip_special_token: Type.Optional(Type.Boolean({ description: 'Leave special tokens out of the text' })),
  ignore_eos_token: Type.Optional(Type.Boolean({ description: 'Go on past the end token (ABI 1.3 only)' })),
  enabled_cpus_mask: Type.Optional(
    Type.Union([Type.Integer({ minimum: 1, maximum: 255 }), Type.String({ pattern: '^0[xX][0-9a-fA-F]{1,2}$' })], {
      description: 'CPUs the runtime may use, bit n = CPU n: 0xF0 is the four big cores of an RK3588 or RK3576',
    }),
  ),
  enabled_cpus_num: Type.Optional(Type.Integer({ minimum: 1, maximum: 8, description: 'How many CPUs the runtime uses (default: the cores in the mask)' })),
  embed_flash: Type.Optional(Type.Boolean({ description: 'Keep the embedding table in flash instead of memory' })),
  n_batch: Type.Optional(Type.Integer({ minimum: 1, maximum: 255, description: 'Sequences decoded at once' })),
  chat_template: Type.Optional(ChatTemplateSettingSchema),
  thinking: Type.Optional(Type.Boolean({ description: 'Ask reasoning models to think first (RKLLMInput.enable_thinking)' })),
  // The one format the OpenAI front end reads today (lib/core/tool-calls.ts); others are refused
  // by name rather than accepted and ignored.
  tool_call_format: Type.Optional(
    Type.Literal('hermes', { description: 'How the model writes a tool call: "hermes", <tool_call>{"name", "arguments"}</tool_call> (Qwen2.5, Hermes)' }),
  ),
  truncation: Type.Optional(TruncationSchema),
  keep_alive: Type.Optional(
    Type.Union([Type.Number(), Type.String({ pattern: '^-?[0-9]+(\\.[0-9]+)?(ms|s|m|h)?$' })], {
      description: 'How long the model stays loaded after its last request: seconds, or "500ms", "30s", "5m", "1h"; 0 unloads at once, -1 never',
    }),
  ),
  lora: Type.Optional(Type.Array(LoraSetting, { description: 'LoRA adapters loaded with the model' })),
};

/** A sidecar file's settings (beside a catalog model: the file is known). */
export const ModelSettingsSchema = Type.Object(settingsMembers, { additionalProperties: false });
/** A model of the config file: its file and its settings. */
export const ModelEntrySchema = Type.Object(
  { path: Type.String({ minLength: 1, description: "The .rkllm file, or 'sim:NAME' on the emulated runtime" }), ...settingsMembers },
  { additionalProperties: false },
);

export type ModelSettings = Static<typeof ModelSettingsSchema>;
export type ModelEntry = Static<typeof ModelEntrySchema>;

/**
 * A model's settings once every source is merged: what the core loads it with and the front ends
 * read. `keep_alive_ms` is -1 for forever.
 */
export interface ResolvedModelSettings extends Omit<ModelEntry, 'keep_alive' | 'aliases' | 'max_context_len' | 'max_new_tokens'> {
  readonly name: string;
  readonly aliases: readonly string[];
  readonly max_context_len: number;
  readonly max_new_tokens: number;
  readonly keep_alive_ms: number;
}

/** The first member that breaks `schema`, as INVALID_ARGUMENT naming it as `where.member` (a misspelt key is named, never dropped). */
export function checkSettings<T extends TSchema>(schema: T, value: unknown, where: string): Static<T> {
  if (Value.Check(schema, value)) return value as Static<T>;
  const first = Value.Errors(schema, value).First();
  const member = first === undefined || first.path === '' ? '' : first.path.slice(1).replace(/\/(\d+)(?=\/|$)/g, '[$1]').replace(/\//g, '.');
  const field = member === '' ? where : `${where}.${member}`;
  if (first?.type === ValueErrorType.ObjectAdditionalProperties) {
    const known = Object.keys((first.schema.properties ?? {}) as Record<string, unknown>);
    throw invalidArgument(field, `is not a model setting; the settings are: ${known.join(', ')}`);
  }
  if (first?.type === ValueErrorType.ObjectRequiredProperty) throw invalidArgument(field, 'is required');
  throw invalidArgument(field, first === undefined ? 'is not valid' : `${first.message.toLowerCase()}, found ${JSON.stringify(first.value)}`);
}

/** keep_alive in milliseconds: a number is seconds (as Ollama reads it); any negative value is forever. */
export function keepAliveMs(value: ModelSettings['keep_alive'], fallback: number): number {
  if (value === undefined) return fallback;
  let ms: number;
  if (typeof value === 'number') ms = value * 1000;
  else {
    const match = /^(-?[0-9]+(?:\.[0-9]+)?)(ms|s|m|h)?$/.exec(value);
    if (!match) throw invalidArgument('keep_alive', `expected seconds or a duration such as "5m", found ${JSON.stringify(value)}`);
    const scale = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(match[2] ?? 's') as 'ms' | 's' | 'm' | 'h'];
    ms = Number(match[1]) * scale;
  }
  return ms < 0 ? KEEP_FOREVER : Math.round(ms);
}

/** The mask as a number: settings may write it in hex ("0xF0"), as Rockchip's examples do. */
function cpuMask(value: ModelSettings['enabled_cpus_mask']): number | undefined {
  if (value === undefined) return undefined;
  return typeof value === 'number' ? value : Number.parseInt(value.slice(2), 16);
}

function bitCount(mask: number): number {
  let count = 0;
  for (let bits = mask; bits !== 0; bits &= bits - 1) count++;
  return count;
}

/** A catalog name from a model file: its name without the extension, lower case (Qwen2.5-1.5B-Instruct-w8a8.rkllm: qwen2.5-1.5b-instruct-w8a8). */
export function modelNameFromFile(file: string): string {
  const base = path.basename(file);
  return base.replace(/\.(rkllm|json)$/i, '').toLowerCase();
}

/**
 * Merges the layers of one model's settings (later ones win, member by member; undefined members
 * count as absent) and fills in the server's defaults.
 */
export function resolveSettings(
  entry: ModelEntry,
  layers: readonly (ModelSettings | undefined)[],
  defaults: { name: string; keepAliveMs: number },
): ResolvedModelSettings {
  const merged: Record<string, unknown> = { ...entry };
  for (const layer of layers) {
    for (const [key, value] of Object.entries(layer ?? {})) if (value !== undefined) merged[key] = value;
  }
  const settings = merged as ModelEntry;
  return {
    ...settings,
    name: settings.name ?? defaults.name,
    aliases: settings.aliases ?? [],
    max_context_len: settings.max_context_len ?? DEFAULT_CONTEXT_LENGTH,
    max_new_tokens: settings.max_new_tokens ?? DEFAULT_MAX_NEW_TOKENS,
    keep_alive_ms: keepAliveMs(settings.keep_alive, defaults.keepAliveMs),
  };
}

/** The RKLLMParam members these settings set (rkllm_init takes the runtime's defaults for the rest). */
export function paramOf(settings: ResolvedModelSettings, modelPath: string): PartialParam {
  const param: PartialParam = {
    model_path: modelPath,
    max_context_len: settings.max_context_len,
    max_new_tokens: settings.max_new_tokens,
  };
  const copied = [
    'top_k',
    'top_p',
    'temperature',
    'repeat_penalty',
    'frequency_penalty',
    'presence_penalty',
    'mirostat',
    'mirostat_tau',
    'mirostat_eta',
    'n_keep',
    'skip_special_token',
    'ignore_eos_token',
  ] as const;
  for (const key of copied) {
    const value = settings[key];
    if (value !== undefined) (param as Record<string, unknown>)[key] = value;
  }
  const extend: NonNullable<PartialParam['extend_param']> = {};
  const mask = cpuMask(settings.enabled_cpus_mask);
  if (mask !== undefined) {
    extend.enabled_cpus_mask = mask;
    extend.enabled_cpus_num = settings.enabled_cpus_num ?? bitCount(mask);
  } else if (settings.enabled_cpus_num !== undefined) extend.enabled_cpus_num = settings.enabled_cpus_num;
  if (settings.embed_flash !== undefined) extend.embed_flash = settings.embed_flash ? 1 : 0;
  if (settings.n_batch !== undefined) extend.n_batch = settings.n_batch;
  if (Object.keys(extend).length > 0) param.extend_param = extend;
  return param;
}

/** Every name a model answers to: its name first, then its aliases. */
export function namesOf(settings: Pick<ResolvedModelSettings, 'name' | 'aliases'>): string[] {
  return [settings.name, ...settings.aliases.filter((alias) => alias !== settings.name)];
}
