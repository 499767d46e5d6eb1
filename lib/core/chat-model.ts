// What the chat front ends (OpenAI's, Ollama's) need to know of a model beyond its handle: its chat template and
// truncation settings, and the limits it was loaded with. The settings come from whoever
// composes the server (lib/serve); the limits from the RKLLMParam the core loaded it with.

import * as path from 'path';
import type { ChatTemplateSetting, Truncation } from './chat-templates';
import type { ServerCore } from './core';
import type { LoadedModel } from './models';
import type { ModelPromptCaches } from './prompt-caches';
import { SIM_MODEL_PREFIX } from '../runtime/emulated';

/** A model's settings that shape a chat (the names of the model settings schema). */
export interface ChatModelSettings {
  /** A preset's name or a custom template; absent: guessed from the model's name. */
  chat_template?: ChatTemplateSetting;
  /** Absent: 'refuse', as OpenAI's API does. */
  truncation?: Truncation;
  /** Ask the model to think first on every run; absent: off. */
  thinking?: boolean;
}

/** The settings of a loaded model; absent members take the defaults above. */
export type ChatSettingsSource = (loaded: LoadedModel) => ChatModelSettings;

export interface ChatModelView {
  /** What a template is guessed from: the model file's name without its extension, or the sim: name. */
  readonly name: string;
  /** max_context_len it was loaded with. */
  readonly contextLength: number;
  /** max_new_tokens it was loaded with; <= 0: none but the context. */
  readonly maxNewTokens: number;
  readonly settings: ChatModelSettings;
  /** Where its conversations' prompt caches are kept; undefined: prompt caches are off. */
  readonly promptCaches?: ModelPromptCaches;
}

function modelName(modelPath: string | undefined, handle: string): string {
  if (modelPath === undefined) return handle;
  if (modelPath.startsWith(SIM_MODEL_PREFIX)) return modelPath.slice(SIM_MODEL_PREFIX.length);
  return path.basename(modelPath).replace(/\.(rkllm|json)$/i, '');
}

export function chatModelView(core: ServerCore, loaded: LoadedModel, settings: ChatModelSettings): ChatModelView {
  const defaults = core.defaultParam();
  const name = modelName(loaded.param.model_path, loaded.handle);
  return {
    name,
    promptCaches: core.promptCaches.forModel(loaded, name),
    contextLength: loaded.param.max_context_len ?? defaults.max_context_len,
    maxNewTokens: loaded.param.max_new_tokens ?? defaults.max_new_tokens,
    settings,
  };
}
