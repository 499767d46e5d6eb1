// A loaded model: the RKLLM functions that act on one handle, as promises that reject with an
// RkllmError (carrying the caller's stack) instead of resolving to a C error code.

import { RkllmError } from '../errors';
import type {
  IntArray,
  NativeModel,
  RKLLMCrossAttnParam,
  RKLLMInferParam,
  RKLLMInput,
  RKLLMLoraAdapter,
} from '../native/binding';
import { argumentError } from './argument-error';
import { type CallSite, captureCallSite, withCallSite } from './call-site';
import { RKLLMInferMode, RKLLMInputType } from './constants';
import { Run, type RunOptions } from './run';

/** What run() takes as infer parameters: any subset, over { mode: GENERATE, keep_history: 0 }. */
export type PartialInferParam = Partial<RKLLMInferParam>;

const DEFAULT_INFER: RKLLMInferParam = { mode: RKLLMInferMode.RKLLM_INFER_GENERATE, keep_history: 0 };

/** Settles with the C return code when it is 0, rejects with CALL_FAILED naming the function otherwise. */
function callNative(cFunction: string, site: CallSite, invoke: () => Promise<number>): Promise<number> {
  let pending: Promise<number>;
  try {
    pending = invoke();
  } catch (error) {
    // Argument errors thrown synchronously by the addon still arrive as a rejection.
    return Promise.reject(withCallSite(error, site));
  }
  return pending.then(
    (code) => {
      if (code !== 0) {
        throw withCallSite(new RkllmError(`${cFunction} returned ${code}`, 'CALL_FAILED', { fn: cFunction, returnCode: code }), site);
      }
      return code;
    },
    (error: unknown) => {
      throw withCallSite(error, site);
    },
  );
}

function toNativeInput(input: RKLLMInput | string): RKLLMInput {
  if (typeof input === 'string') return { input_type: RKLLMInputType.RKLLM_INPUT_PROMPT, prompt_input: input };
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw argumentError('rkllm_input', 'expected a string or an RKLLMInput object');
  }
  return input;
}

function toNativeInfer(infer: PartialInferParam | undefined): RKLLMInferParam {
  if (infer === undefined) return { ...DEFAULT_INFER };
  if (typeof infer !== 'object' || infer === null || Array.isArray(infer)) {
    throw argumentError('rkllm_infer_params', 'expected an object');
  }
  const merged: Record<string, unknown> = { ...DEFAULT_INFER };
  for (const [key, value] of Object.entries(infer)) {
    if (value !== undefined) merged[key] = value;
  }
  // The addon checks each member's type; this layer only fills the defaults.
  return merged as unknown as RKLLMInferParam;
}

export class Model {
  readonly #native: NativeModel;

  /** Made by Runtime.loadModel. */
  constructor(native: NativeModel) {
    this.#native = native;
  }

  /** Starts an inference (queued behind any other on this model). A string is a prompt. */
  run(input: RKLLMInput | string, infer?: PartialInferParam, options?: RunOptions): Run {
    const site = captureCallSite(this.run);
    const native = this.#native;
    return new Run(
      {
        start: (listener) => native.run(toNativeInput(input), toNativeInfer(infer), listener),
        cancel: (runId) => native.cancel(runId),
      },
      options ?? {},
      site,
    );
  }

  /** rkllm_abort: stops whatever runs on this model now (that run ends as aborted). */
  abort(): Promise<number> {
    return callNative('rkllm_abort', captureCallSite(this.abort), () => this.#native.abort());
  }

  isRunning(): boolean {
    return this.#native.isRunning();
  }

  /** One size per batch entry (extend_param.n_batch). */
  getKvCacheSize(): number[] {
    return this.#native.getKvCacheSize();
  }

  loadLora(adapter: RKLLMLoraAdapter): Promise<number> {
    return callNative('rkllm_load_lora', captureCallSite(this.loadLora), () => this.#native.loadLora(adapter));
  }

  loadPromptCache(promptCachePath: string): Promise<number> {
    return callNative('rkllm_load_prompt_cache', captureCallSite(this.loadPromptCache), () =>
      this.#native.loadPromptCache(promptCachePath),
    );
  }

  releasePromptCache(): Promise<number> {
    return callNative('rkllm_release_prompt_cache', captureCallSite(this.releasePromptCache), () =>
      this.#native.releasePromptCache(),
    );
  }

  /** Ranges (per batch entry) apply only while paused with keep_history 0; none clears all. */
  clearKvCache(keepSystemPrompt: boolean, startPos?: IntArray, endPos?: IntArray): Promise<number> {
    return callNative('rkllm_clear_kv_cache', captureCallSite(this.clearKvCache), () =>
      this.#native.clearKvCache(keepSystemPrompt, startPos, endPos),
    );
  }

  setChatTemplate(systemPrompt: string, promptPrefix: string, promptPostfix: string): Promise<number> {
    return callNative('rkllm_set_chat_template', captureCallSite(this.setChatTemplate), () =>
      this.#native.setChatTemplate(systemPrompt, promptPrefix, promptPostfix),
    );
  }

  /** tools: a JSON string, or an array serialised here. */
  setFunctionTools(systemPrompt: string, tools: string | object[], toolResponseStr: string): Promise<number> {
    return callNative('rkllm_set_function_tools', captureCallSite(this.setFunctionTools), () =>
      this.#native.setFunctionTools(systemPrompt, typeof tools === 'string' ? tools : JSON.stringify(tools), toolResponseStr),
    );
  }

  setCrossAttnParams(params: RKLLMCrossAttnParam): Promise<number> {
    return callNative('rkllm_set_cross_attn_params', captureCallSite(this.setCrossAttnParams), () =>
      this.#native.setCrossAttnParams(params),
    );
  }

  /** Ends queued and running runs as aborted, then rkllm_destroy. Later calls fail with MODEL_DESTROYED. */
  destroy(): Promise<number> {
    return callNative('rkllm_destroy', captureCallSite(this.destroy), () => this.#native.destroy());
  }

  /** Floats per token of the model, which embedding arrays are checked against (0: not known). */
  get embeddingSize(): number {
    return this.#native.embeddingSize;
  }

  get destroyed(): boolean {
    return this.#native.destroyed;
  }
}
