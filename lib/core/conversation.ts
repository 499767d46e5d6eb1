// Turning a chat request's messages (OpenAI's or Ollama's) into one RKLLM run, and reusing the KV cache across turns.
//
// RKLLM keeps a conversation in the model's KV cache (keep_history 1), one input per run. A chat
// request carries the whole conversation each time. So for each model the server remembers the
// conversation its cache holds: the messages (normalised) up to and including the assistant reply
// it produced, and the cache size right after that run. A request whose messages are exactly
// those plus one new user or tool message runs only that message, on top of the cache: the fast
// path. Anything else (another conversation, an edited history, a different system prompt or
// tool list, or a cache someone else changed since, seen as a different size) clears the cache
// (rkllm_clear_kv_cache) and runs the whole conversation as one prompt. Such a run saves a prompt
// cache (lib/core/prompt-caches.ts), and a later one whose history extends a saved one loads
// it first, so the runtime prefills only what follows: several users taking turns, or a side
// request between two turns, cost a cache load instead of the whole history.
//
// All of this happens in the job's prepare step, when the request reaches the model: queued
// requests on the same model must see the cache as the run before them left it.

import { applyChatTemplate, chatTemplatePreset, renderConversation, resolveChatTemplate, type ChatTemplate, type TemplateTurn } from './chat-templates';
import { contextLengthExceeded, fitConversation, tokenEstimatorOf } from './context-budget';
import type { LoadedModel } from './models';
import { isRkllmError } from '../errors';
import type { RKLLMInput } from '../native/binding';
import type { PartialInferParam } from '../runtime/model';
import type { ChatModelView } from './chat-model';
import type { PendingSave } from './prompt-caches';

/** A chat message as the front ends hand it over (OpenAI's shape; the Ollama front end converts to it). */
export interface ChatMessage {
  role: 'system' | 'developer' | 'user' | 'assistant' | 'tool';
  content?: string | { type: 'text'; text: string }[] | null;
  tool_calls?: { function: { name: string; arguments: string } }[];
}

/** rkllm_set_function_tools' tool_response_str: the tag a tool's answer is wrapped in (Qwen's). */
const TOOL_RESPONSE_TAG = 'tool_response';

/**
 * The template of a model that has none by setting or name, once a request brings a system
 * message: RKLLM's system prompt is templated text, so some template has to hold it. ChatML, the
 * template of the Qwen models RKLLM is mostly used with. Until then the model's own template (the
 * one its .rkllm file carries) is left alone.
 */
const FALLBACK = chatTemplatePreset('chatml');

/** What the server last did to one model through the chat front ends (/v1 and /api). */
interface ModelMemory {
  /** The three strings last given to rkllm_set_chat_template, joined; undefined: never set from here. */
  template: string | undefined;
  /** The tools JSON last given to rkllm_set_function_tools; undefined: never set from here. */
  toolsJson: string | undefined;
  /** The normalised messages the KV cache holds, ending with the reply; undefined: nothing reusable. */
  conversation: string[] | undefined;
  /** KV cache size (batch entry 0) right after the run that produced `conversation`. */
  cacheSize: number;
  /** A prompt cache was loaded (rkllm_load_prompt_cache) and not released since. */
  promptCacheLoaded: boolean;
}

const memories = new WeakMap<LoadedModel, ModelMemory>();

function memoryOf(loaded: LoadedModel): ModelMemory {
  let memory = memories.get(loaded);
  if (!memory) {
    memory = { template: undefined, toolsJson: undefined, conversation: undefined, cacheSize: 0, promptCacheLoaded: false };
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

/** A prompt cache loaded for an earlier run is released: a run that did not ask for it must not match against it. */
async function releasePromptCache(loaded: LoadedModel, memory: ModelMemory): Promise<void> {
  if (!memory.promptCacheLoaded) return;
  memory.promptCacheLoaded = false;
  await loaded.model.releasePromptCache();
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

export function splitMessages(messages: ChatMessage[], tools: readonly unknown[] | null | undefined, toolChoice: unknown): ChatTurn {
  const system = messages.filter((message) => message.role === 'system' || message.role === 'developer');
  const history = messages.filter((message) => message.role !== 'system' && message.role !== 'developer');
  const useTools = tools !== null && tools !== undefined && tools.length > 0 && toolChoice !== 'none';
  return {
    systemText: system.length > 0 ? system.map((message) => textOf(message.content)).join('\n') : undefined,
    history,
    toolsJson: useTools ? JSON.stringify(tools) : undefined,
  };
}

function callsText(message: ChatMessage): string {
  // The form the tool-call parser reads back (Qwen's), so a model sees its own calls as it wrote them.
  return (message.tool_calls ?? [])
    .map((call) => `\n<tool_call>\n{"name": ${JSON.stringify(call.function.name)}, "arguments": ${call.function.arguments}}\n</tool_call>`)
    .join('');
}

function turnOf(message: ChatMessage): TemplateTurn {
  const role = message.role === 'assistant' ? 'assistant' : message.role === 'tool' ? 'tool' : 'user';
  return { role, text: textOf(message.content) + callsText(message) };
}

function inputFor(template: ChatTemplate, messages: ChatMessage[]): RKLLMInput {
  const last = messages[messages.length - 1];
  // The runtime takes one input per run; earlier turns it has not seen go in front, in the template's marks.
  const prompt = renderConversation(template, messages.map(turnOf), TOOL_RESPONSE_TAG);
  return { input_type: 0, role: last.role === 'tool' ? 'tool' : 'user', prompt_input: prompt };
}

/** The template a chat on this model uses: its setting, its name, else ChatML once there is a system text. */
function templateFor(view: ChatModelView, memory: ModelMemory, systemText: string | undefined): ChatTemplate | undefined {
  const resolved = resolveChatTemplate(view.settings.chat_template, view.name);
  if (resolved) return resolved;
  return systemText !== undefined || memory.template !== undefined ? FALLBACK : undefined;
}

export interface ChatPlan {
  /** The job's prepare step: model state set, cache kept or cleared, the input chosen. */
  prepare(): Promise<{ input: RKLLMInput; infer: PartialInferParam }>;
  /** After a run that finished unaltered: the cache now holds this conversation plus `reply`. */
  remember(reply: Pick<ChatMessage, 'role' | 'content' | 'tool_calls'>, promptTokens: number): void;
  /** After a run that failed (`error`), was cut or cancelled: the cache holds nothing reusable. */
  forget(error?: unknown): void;
  /** Whether prepare found the request extending the cached conversation. */
  readonly reused: boolean;
  /**
   * Of the prompt tokens the runtime reports for the run (its whole prompt: the fast path's new
   * turn, else the whole conversation), those a loaded prompt cache held, not prefilled again.
   */
  cachedTokens(promptTokens: number): number;
}

export interface ChatLimits {
  view: ChatModelView;
  /** The request's max_completion_tokens or max_tokens. */
  maxTokens: number | undefined;
}

/**
 * Tokens kept free for the answer when deciding whether a prompt fits. Refusing, as OpenAI does:
 * what the request asked for, else nothing (an answer that meets the context ends with "length").
 * Dropping old turns: the answer's limit, at most half the context, so the next turns do not
 * have to drop again at once.
 */
function answerReserve(limits: ChatLimits, truncation: 'refuse' | 'drop_oldest'): number {
  const context = limits.view.contextLength;
  if (truncation === 'refuse') return limits.maxTokens ?? 0;
  const limit = limits.maxTokens ?? (limits.view.maxNewTokens > 0 ? limits.view.maxNewTokens : context);
  return Math.min(limit, Math.floor(context / 2));
}

export function planChat(loaded: LoadedModel, turn: ChatTurn, infer: PartialInferParam, limits: ChatLimits): ChatPlan {
  const memory = memoryOf(loaded);
  const model = loaded.model;
  const normalised = turn.history.map(normalise);
  const truncation = limits.view.settings.truncation ?? 'refuse';
  const contextLength = limits.view.contextLength;
  const reserve = answerReserve(limits, truncation);
  let reused = false;
  /** What the run prefills, for learning the model's bytes per token once it has run. */
  let prefilled = '';
  /** Tokens of the prompt cache the run loaded. */
  let cacheTokens = 0;
  const caches = limits.view.promptCaches;
  let pending: PendingSave | undefined;
  const releaseLoaded = () => releasePromptCache(loaded, memory);
  return {
    get reused() {
      return reused;
    },
    cachedTokens(promptTokens) {
      return Math.min(cacheTokens, promptTokens);
    },
    async prepare() {
      let stateChanged = false;
      const template = templateFor(limits.view, memory, turn.systemText);
      const systemPrompt = template ? template.systemPrompt(turn.systemText) : '';
      if (template) {
        const strings = JSON.stringify([systemPrompt, template.prefix, template.postfix]);
        if (strings !== memory.template) {
          await applyChatTemplate(model, template, turn.systemText);
          memory.template = strings;
          stateChanged = true;
        }
      }
      // Tools set earlier from here are withdrawn with an empty list (the C API has no unset).
      const toolsJson = turn.toolsJson ?? (memory.toolsJson !== undefined ? '[]' : undefined);
      if (toolsJson !== undefined && toolsJson !== memory.toolsJson) {
        await model.setFunctionTools(systemPrompt, toolsJson, TOOL_RESPONSE_TAG);
        memory.toolsJson = toolsJson;
        stateChanged = true;
      }
      const wrap = (text: string) => (template ? template.prefix + text + template.postfix : text);
      const known = memory.conversation;
      const cacheSize = model.getKvCacheSize()[0] ?? 0;
      const last = turn.history[turn.history.length - 1];
      const continues =
        !stateChanged &&
        known !== undefined &&
        cacheSize === memory.cacheSize &&
        normalised.length === known.length + 1 &&
        known.every((entry, index) => entry === normalised[index]);
      memory.conversation = undefined;
      const estimator = tokenEstimatorOf(loaded);
      if (continues) {
        const input = inputFor(template ?? FALLBACK, [last]);
        const text = wrap(input.prompt_input ?? '');
        // The cache's size is exact; only the new turn is estimated.
        if (cacheSize + estimator.estimate(text) + reserve <= contextLength) {
          reused = true;
          prefilled = text;
          // A prompt cache loaded for an earlier turn is not this run's to match against.
          await releaseLoaded();
          return { input, infer: { ...infer, keep_history: 1 } };
        }
        // The cache is too full for this turn: refused below, or started again from fewer turns.
      }
      const systemTokens = estimator.estimate(systemPrompt + (turn.toolsJson ?? ''));
      const cost = (kept: readonly ChatMessage[]) => systemTokens + estimator.estimate(wrap(inputFor(template ?? FALLBACK, [...kept]).prompt_input ?? ''));
      const fit = fitConversation(turn.history, cost, contextLength, reserve, truncation);
      if (!fit.fits) throw contextLengthExceeded({ contextLength, promptTokens: fit.promptTokens, reserve, truncation, estimated: true });
      if (cacheSize > 0) await model.clearKvCache(false);
      const input = inputFor(template ?? FALLBACK, fit.kept);
      // Into an empty cache the runtime prefills the system turn (and the tools, when set) first.
      prefilled = systemPrompt + (turn.toolsJson ?? '') + wrap(input.prompt_input ?? '');
      if (!caches) return { input, infer: { ...infer, keep_history: 1 } };
      const stateKey = JSON.stringify([memory.template ?? null, memory.toolsJson ?? null]);
      const covered = fit.kept.map(normalise);
      const found = caches.longest(stateKey, covered);
      let usedCache = false;
      if (found && (await caches.check(found))) {
        const returnCode = await model.loadPromptCache(found.file).catch((error: unknown) => (error instanceof Error ? error.message : String(error)));
        if (returnCode === 0) {
          usedCache = true;
          memory.promptCacheLoaded = true;
          found.lastUsed = Date.now();
          cacheTokens = found.tokens;
        } else {
          // Correctness never rests on a cache: the run prefills everything instead.
          await caches.drop(found, `the runtime refused it (rkllm_load_prompt_cache: ${returnCode}); prefilling in full`, 'warn');
        }
      }
      if (!usedCache) await releaseLoaded();
      const file = await caches.nextFile(estimator.estimate(prefilled));
      if (file === undefined) return { input, infer: { ...infer, keep_history: 1 } };
      pending = { file, stateKey, messages: covered };
      return { input, infer: { ...infer, keep_history: 1, prompt_cache_params: { save_prompt_cache: 1, prompt_cache_path: file } } };
    },
    remember(reply, promptTokens) {
      // The runtime's count covers the loaded cache's tokens too, but only the rest was prefilled.
      if (cacheTokens === 0) tokenEstimatorOf(loaded).learn(prefilled, promptTokens);
      memory.conversation = [...normalised, normalise(reply)];
      memory.cacheSize = model.getKvCacheSize()[0] ?? 0;
      if (pending && caches) void caches.commit(pending, promptTokens);
      pending = undefined;
    },
    forget(error) {
      memory.conversation = undefined;
      if (pending && caches) {
        // A runtime that dies in a run that saves a prompt cache may die in every such run (a
        // report against 1.2.1's save_prompt_cache: docs/openai.md): the model saves no more.
        if (isRkllmError(error, 'RUNTIME_FAILED')) void caches.turnOff(error.message);
        else void caches.discard(pending);
      }
      pending = undefined;
    },
  };
}

/** /v1/completions: a plain prompt on a clean cache, which it leaves clean (keep_history 0). */
export function planCompletion(loaded: LoadedModel, prompt: string, infer: PartialInferParam): () => Promise<{ input: RKLLMInput; infer: PartialInferParam }> {
  const memory = memoryOf(loaded);
  return async () => {
    memory.conversation = undefined;
    await releasePromptCache(loaded, memory);
    if ((loaded.model.getKvCacheSize()[0] ?? 0) > 0) await loaded.model.clearKvCache(false);
    return { input: { input_type: 0, role: 'user', prompt_input: prompt }, infer: { ...infer, keep_history: 0 } };
  };
}

/**
 * A prompt sent as written (Ollama's raw): the chat template is set to three empty strings, so
 * the runtime adds no marks, on a clean cache it leaves clean. The next chat sets its template again.
 */
export function planRaw(loaded: LoadedModel, prompt: string, infer: PartialInferParam): () => Promise<{ input: RKLLMInput; infer: PartialInferParam }> {
  const memory = memoryOf(loaded);
  const none = JSON.stringify(['', '', '']);
  return async () => {
    memory.conversation = undefined;
    if (memory.template !== none) {
      await loaded.model.setChatTemplate('', '', '');
      memory.template = none;
    }
    await releasePromptCache(loaded, memory);
    if ((loaded.model.getKvCacheSize()[0] ?? 0) > 0) await loaded.model.clearKvCache(false);
    return { input: { input_type: 0, role: 'user', prompt_input: prompt }, infer: { ...infer, keep_history: 0 } };
  };
}
