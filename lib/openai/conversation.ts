// Turning OpenAI messages into one RKLLM run, and reusing the KV cache across turns.
//
// RKLLM keeps a conversation in the model's KV cache (keep_history 1), one input per run. A chat
// request carries the whole conversation each time. So for each model the server remembers the
// conversation its cache holds: the messages (normalised) up to and including the assistant reply
// it produced, and the cache size right after that run. A request whose messages are exactly
// those plus one new user or tool message runs only that message, on top of the cache. Anything
// else (another conversation, an edited history, a different system prompt or tool list, or a
// cache someone else changed since, seen as a different size) clears the cache first
// (rkllm_clear_kv_cache) and runs the request on its own.
//
// All of this happens in the job's prepare step, when the request reaches the model: queued
// requests on the same model must see the cache as the run before them left it.

import type { RKLLMInput } from '../native/binding';
import type { PartialInferParam } from '../runtime/model';
import type { LoadedModel } from '../core/models';
import type { ChatMessage, FunctionTool } from './schemas';

/** rkllm_set_function_tools' tool_response_str: the tag a tool's answer is wrapped in (Qwen's). */
const TOOL_RESPONSE_TAG = 'tool_response';

/**
 * The chat template set when a request has a system message. RKLLM's system prompt is the
 * templated system text, so the server has to pick a template to put it in: ChatML, which the
 * Qwen models RKLLM ships for use. Without a system message the model's own template is left
 * alone.
 */
export const CHATML = {
  system: (text: string) => `<|im_start|>system\n${text}<|im_end|>\n`,
  prefix: '<|im_start|>user\n',
  postfix: '<|im_end|>\n<|im_start|>assistant\n',
};

/** What the server last did to one model through the /v1 routes. */
interface ModelMemory {
  /** The system text last given to rkllm_set_chat_template; undefined: never set from here. */
  systemText: string | undefined;
  /** The tools JSON last given to rkllm_set_function_tools; undefined: never set from here. */
  toolsJson: string | undefined;
  /** The normalised messages the KV cache holds, ending with the reply; undefined: nothing reusable. */
  conversation: string[] | undefined;
  /** KV cache size (batch entry 0) right after the run that produced `conversation`. */
  cacheSize: number;
}

const memories = new WeakMap<LoadedModel, ModelMemory>();

function memoryOf(loaded: LoadedModel): ModelMemory {
  let memory = memories.get(loaded);
  if (!memory) {
    memory = { systemText: undefined, toolsJson: undefined, conversation: undefined, cacheSize: 0 };
    memories.set(loaded, memory);
  }
  return memory;
}

/** A message's text: a string, or its text parts joined. */
export function textOf(content: ChatMessage['content']): string {
  if (content === null || content === undefined) return '';
  if (typeof content === 'string') return content;
  return content.map((part) => part.text).join('');
}

/** What identifies a message in a conversation: role, text, tool calls (ids are the server's own and ignored). */
function normalise(message: Pick<ChatMessage, 'role' | 'content' | 'tool_calls'>): string {
  const calls = (message.tool_calls ?? []).map((call) => [call.function.name, call.function.arguments]);
  return JSON.stringify([message.role, textOf(message.content), calls]);
}

export interface ChatTurn {
  /** System and developer messages, joined; undefined when there are none. */
  systemText: string | undefined;
  /** The other messages in order; the last one is a user or tool message. */
  history: ChatMessage[];
  /** The tools JSON for rkllm_set_function_tools; undefined: no tools. */
  toolsJson: string | undefined;
}

export function splitMessages(messages: ChatMessage[], tools: FunctionTool[] | null | undefined, toolChoice: unknown): ChatTurn {
  const system = messages.filter((message) => message.role === 'system' || message.role === 'developer');
  const history = messages.filter((message) => message.role !== 'system' && message.role !== 'developer');
  const useTools = tools !== null && tools !== undefined && tools.length > 0 && toolChoice !== 'none';
  return {
    systemText: system.length > 0 ? system.map((message) => textOf(message.content)).join('\n') : undefined,
    history,
    toolsJson: useTools ? JSON.stringify(tools) : undefined,
  };
}

/** The earlier turns of a conversation that does not continue the cached one, as plain text. */
function transcript(earlier: ChatMessage[]): string {
  return earlier
    .map((message) => {
      const calls = (message.tool_calls ?? []).map((call) => ` [called ${call.function.name}(${call.function.arguments})]`).join('');
      return `${message.role}: ${textOf(message.content)}${calls}`;
    })
    .join('\n');
}

function inputFor(message: ChatMessage, earlier: ChatMessage[]): RKLLMInput {
  const text = textOf(message.content);
  // The runtime takes one input per run; earlier turns it has not seen go in front as a transcript.
  const prompt = earlier.length > 0 ? `${transcript(earlier)}\n${message.role}: ${text}` : text;
  return { input_type: 0, role: message.role === 'tool' ? 'tool' : 'user', prompt_input: prompt };
}

export interface ChatPlan {
  /** The job's prepare step: model state set, cache kept or cleared, the input chosen. */
  prepare(): Promise<{ input: RKLLMInput; infer: PartialInferParam }>;
  /** After a run that finished unaltered: the cache now holds this conversation plus `reply`. */
  remember(reply: Pick<ChatMessage, 'role' | 'content' | 'tool_calls'>): void;
  /** After a run that failed, was cut or cancelled: the cache holds nothing reusable. */
  forget(): void;
  /** Whether prepare found the request extending the cached conversation. */
  readonly reused: boolean;
}

export function planChat(loaded: LoadedModel, turn: ChatTurn, infer: PartialInferParam): ChatPlan {
  const memory = memoryOf(loaded);
  const model = loaded.model;
  const normalised = turn.history.map(normalise);
  let reused = false;
  return {
    get reused() {
      return reused;
    },
    async prepare() {
      let stateChanged = false;
      // A system prompt set earlier from here is withdrawn when a request has none.
      const systemText = turn.systemText ?? (memory.systemText !== undefined ? '' : undefined);
      if (systemText !== undefined && systemText !== memory.systemText) {
        await model.setChatTemplate(systemText === '' ? '' : CHATML.system(systemText), CHATML.prefix, CHATML.postfix);
        memory.systemText = systemText;
        stateChanged = true;
      }
      // Tools set earlier from here are withdrawn with an empty list (the C API has no unset).
      const toolsJson = turn.toolsJson ?? (memory.toolsJson !== undefined ? '[]' : undefined);
      if (toolsJson !== undefined && toolsJson !== memory.toolsJson) {
        await model.setFunctionTools(systemText ? CHATML.system(systemText) : '', toolsJson, TOOL_RESPONSE_TAG);
        memory.toolsJson = toolsJson;
        stateChanged = true;
      }
      const known = memory.conversation;
      const cacheSize = model.getKvCacheSize()[0] ?? 0;
      reused =
        !stateChanged &&
        known !== undefined &&
        cacheSize === memory.cacheSize &&
        normalised.length === known.length + 1 &&
        known.every((entry, index) => entry === normalised[index]);
      memory.conversation = undefined;
      const last = turn.history[turn.history.length - 1];
      if (reused) return { input: inputFor(last, []), infer: { ...infer, keep_history: 1 } };
      if (cacheSize > 0) await model.clearKvCache(false);
      return { input: inputFor(last, turn.history.slice(0, -1)), infer: { ...infer, keep_history: 1 } };
    },
    remember(reply) {
      memory.conversation = [...normalised, normalise(reply)];
      memory.cacheSize = model.getKvCacheSize()[0] ?? 0;
    },
    forget() {
      memory.conversation = undefined;
    },
  };
}

/** /v1/completions: a plain prompt on a clean cache, which it leaves clean (keep_history 0). */
export function planCompletion(loaded: LoadedModel, prompt: string, infer: PartialInferParam): () => Promise<{ input: RKLLMInput; infer: PartialInferParam }> {
  const memory = memoryOf(loaded);
  return async () => {
    memory.conversation = undefined;
    if ((loaded.model.getKvCacheSize()[0] ?? 0) > 0) await loaded.model.clearKvCache(false);
    return { input: { input_type: 0, role: 'user', prompt_input: prompt }, infer: { ...infer, keep_history: 0 } };
  };
}
