// Methods that change a model's state: LoRA, prompt cache, KV cache, chat template, function
// tools, cross-attention. They go straight to the model's native worker, which runs them in
// order with its runs. A non-zero C return code becomes a CALL_FAILED error. Each reaches every
// client of the model, so each asks the core's model-control policy first (--model-control).

import { Type } from '@sinclair/typebox';
import type { ModelAction } from '../core/model-control';
import type { LoadedModel } from '../core/models';
import { modelFileOf } from '../core/prompt-caches';
import { invalidArgument } from '../errors';
import type { MethodContext } from './context';
import { defineMethod, type MethodEntry } from './define';
import { CrossAttnParams, Handle, LoraAdapter } from './schemas';

/** The model a model-wide call names, once the policy lets this connection make the call. */
export function controlledModel(context: MethodContext, handle: string | undefined, action: ModelAction): LoadedModel {
  const loaded = context.core.models.resolve(handle);
  context.core.control.check(loaded, context.connection, action);
  return loaded;
}

async function returnCode(call: Promise<number>): Promise<{ return_code: number }> {
  return { return_code: await call };
}

export const modelStateMethods: MethodEntry[] = [
  defineMethod({
    name: 'rkllm_load_lora',
    description: "Loads a LoRA adapter (rkllm_load_lora); its path must be inside the server's models directories.",
    params: Type.Object({ handle: Handle, lora_adapter: LoraAdapter }),
    cheap: false,
    handler: ({ handle, lora_adapter }, context) => {
      const { core } = context;
      const loaded = controlledModel(context, handle, 'state');
      const path = core.paths.loraFile('lora_adapter.lora_adapter_path', lora_adapter.lora_adapter_path);
      return returnCode(loaded.model.loadLora({ ...lora_adapter, lora_adapter_path: path }));
    },
  }),
  defineMethod({
    name: 'rkllm_load_prompt_cache',
    description: "Loads a saved prompt cache (rkllm_load_prompt_cache); the file must be inside the server's cache directory.",
    params: Type.Object({ handle: Handle, prompt_cache_path: Type.String({ minLength: 1 }) }),
    cheap: false,
    handler: ({ handle, prompt_cache_path }, context) => {
      const { core } = context;
      const loaded = controlledModel(context, handle, 'state');
      const owner = core.promptCacheOwners.ownerOf(core.paths.cacheFileToRead('prompt_cache_path', prompt_cache_path));
      if (owner !== undefined && owner !== modelFileOf(loaded)) {
        throw invalidArgument(
          'prompt_cache_path',
          `was saved by another model ('${owner}'); a prompt cache holds one model's KV state and is never loaded into another ('${modelFileOf(loaded)}')`,
        );
      }
      // Opened now and read by the runtime through the descriptor, when the call reaches the worker.
      const file = core.paths.openCacheFileToRead('prompt_cache_path', prompt_cache_path);
      let call: Promise<number>;
      try {
        call = loaded.model.loadPromptCache(file.path);
      } catch (error) {
        file.release();
        throw error;
      }
      return returnCode(call.finally(file.release));
    },
  }),
  defineMethod({
    name: 'rkllm_release_prompt_cache',
    description: 'Releases the loaded prompt cache (rkllm_release_prompt_cache).',
    params: Type.Object({ handle: Handle }),
    cheap: false,
    handler: ({ handle }, context) => returnCode(controlledModel(context, handle, 'state').model.releasePromptCache()),
  }),
  defineMethod({
    name: 'rkllm_clear_kv_cache',
    description:
      'Clears the KV cache (rkllm_clear_kv_cache). start_pos/end_pos (one per batch entry, both or neither) trim ranges instead.',
    params: Type.Object({
      handle: Handle,
      keep_system_prompt: Type.Union([Type.Boolean(), Type.Integer()]),
      start_pos: Type.Optional(Type.Array(Type.Integer())),
      end_pos: Type.Optional(Type.Array(Type.Integer())),
    }),
    cheap: false,
    handler: ({ handle, keep_system_prompt, start_pos, end_pos }, context) =>
      returnCode(controlledModel(context, handle, 'state').model.clearKvCache(Boolean(keep_system_prompt), start_pos, end_pos)),
  }),
  defineMethod({
    name: 'rkllm_set_chat_template',
    description: 'Sets the chat template (rkllm_set_chat_template).',
    params: Type.Object({
      handle: Handle,
      system_prompt: Type.String(),
      prompt_prefix: Type.String(),
      prompt_postfix: Type.String(),
    }),
    cheap: false,
    handler: ({ handle, system_prompt, prompt_prefix, prompt_postfix }, context) =>
      returnCode(controlledModel(context, handle, 'state').model.setChatTemplate(system_prompt, prompt_prefix, prompt_postfix)),
  }),
  defineMethod({
    name: 'rkllm_set_function_tools',
    description: 'Sets the function tools (rkllm_set_function_tools); tools is a JSON string or an array.',
    params: Type.Object({
      handle: Handle,
      system_prompt: Type.String(),
      tools: Type.Union([Type.String(), Type.Array(Type.Unknown())]),
      tool_response_str: Type.String(),
    }),
    cheap: false,
    handler: ({ handle, system_prompt, tools, tool_response_str }, context) =>
      returnCode(controlledModel(context, handle, 'state').model.setFunctionTools(system_prompt, tools as string | object[], tool_response_str)),
  }),
  defineMethod({
    name: 'rkllm_set_cross_attn_params',
    description: 'Sets the cross-attention parameters (rkllm_set_cross_attn_params).',
    params: Type.Object({ handle: Handle, cross_attn_params: CrossAttnParams }),
    cheap: false,
    handler: ({ handle, cross_attn_params }, context) =>
      returnCode(controlledModel(context, handle, 'state').model.setCrossAttnParams(cross_attn_params)),
  }),
];
