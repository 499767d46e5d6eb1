// The shape of the native module (build/Release/rkllm_serve.node), declared once. Everything in
// lib/ that touches the addon is typed from these declarations; addon/ implements them.
//
// Field names follow the C names of the RKLLM API (snake_case) so that objects can pass between
// JSON-RPC clients, this layer and the runtime without renaming.

import type { RkllmError } from '../errors';

export type AbiName = '1.2' | '1.3';

/** How the ABI of the opened library was decided (docs/rkllm-abi.md, "Telling the ABI"). */
export type AbiSource = 'explicit' | 'emulated-marker' | 'blob-id';

export interface NativeRuntimeInfo {
  /** The file that was opened (resolved by the dynamic loader when a bare name was given). */
  path: string;
  abi: AbiName;
  abiSource: AbiSource;
  /** True when the library is the project's emulated runtime. */
  emulated: boolean;
  /** The official release matched by blob id, when that is how the ABI was found. */
  release?: string;
}

export interface ExtendParam {
  base_domain_id: number;
  embed_flash: number;
  enabled_cpus_num: number;
  enabled_cpus_mask: number;
  n_batch: number;
  use_cross_attn: number;
}

/** RKLLMParam with the fields of both ABIs; each ABI reads and reports only its own. */
export interface RKLLMParam {
  model_path: string;
  max_context_len: number;
  max_new_tokens: number;
  top_k: number;
  n_keep: number;
  top_p: number;
  temperature: number;
  repeat_penalty: number;
  frequency_penalty: number;
  presence_penalty: number;
  mirostat: number;
  mirostat_tau: number;
  mirostat_eta: number;
  skip_special_token: boolean;
  /** 1.3 only. */
  ignore_eos_token?: boolean;
  is_async: boolean;
  /** 1.2 only. */
  img_start?: string;
  /** 1.2 only. */
  img_end?: string;
  /** 1.2 only. */
  img_content?: string;
  extend_param: ExtendParam;
}

export type NumberArray = number[] | Float32Array;
export type IntArray = number[] | Int32Array;

export interface MultimodalInput {
  prompt: string;
  image_embed?: NumberArray;
  n_image_tokens?: number;
  n_image?: number;
  image_width?: number;
  image_height?: number;
  /** 1.3 only. */
  image_start?: string;
  image_end?: string;
  image_content?: string;
  video_embed?: NumberArray;
  n_frame_tokens?: number;
  n_frame_per_video?: number;
  n_video?: number;
  video_start?: string;
  video_end?: string;
  video_content?: string;
  frame_width?: number;
  frame_height?: number;
}

/** RKLLMInput. Exactly the member named by input_type must be present. */
export interface RKLLMInput {
  input_type: number;
  role?: string;
  enable_thinking?: boolean;
  prompt_input?: string;
  token_input?: IntArray;
  embed_input?: { embed: NumberArray; n_tokens: number };
  multimodal_input?: MultimodalInput;
}

export interface SamplingParam {
  top_k: number;
  top_p: number;
  temperature: number;
  repeat_penalty: number;
  frequency_penalty: number;
  presence_penalty: number;
  mirostat: number;
  mirostat_tau: number;
  mirostat_eta: number;
}

/** RKLLMInferParam. sampling_params and max_new_tokens are honoured by the 1.3 ABI only. */
export interface RKLLMInferParam {
  mode: number;
  lora_params?: { lora_adapter_name: string };
  prompt_cache_params?: { save_prompt_cache: boolean | number; prompt_cache_path?: string };
  sampling_params?: SamplingParam;
  keep_history: boolean | number;
  max_new_tokens?: number;
}

export interface RKLLMLoraAdapter {
  lora_adapter_path: string;
  lora_adapter_name: string;
  scale: number;
}

export interface RKLLMCrossAttnParam {
  encoder_k_cache: NumberArray;
  encoder_v_cache: NumberArray;
  encoder_mask: NumberArray;
  encoder_pos: IntArray;
  num_tokens: number;
}

export interface Perf {
  prefill_time_ms: number;
  prefill_tokens: number;
  generate_time_ms: number;
  generate_tokens: number;
  memory_usage_mb: number;
}

export interface FloatBlock {
  data: Float32Array;
  num_tokens: number;
}

/** One token of a run, or the run's end. Times are CLOCK_MONOTONIC microseconds (as
 * process.hrtime.bigint() / 1000n), taken when the runtime's callback fired. */
export type NativeRunEvent =
  | {
      kind: 'token';
      /** 0 NORMAL, or 1 WAITING: the token ended inside a UTF-8 character; its bytes are held
       * and delivered in the text of the token that completes the character. */
      state: 0 | 1;
      /** Whole UTF-8 only. */
      text: string;
      token_id: number;
      time_us: number;
      logits?: FloatBlock & { vocab_size: number };
      last_hidden_layer?: FloatBlock & { embd_size: number };
    }
  | {
      kind: 'end';
      status: 'finish' | 'error' | 'aborted';
      perf?: Perf;
      /** Set when status is 'error'. */
      error?: { code: string; message: string };
      time_us: number;
    };

export type RunEventsListener = (events: NativeRunEvent[]) => void;

export interface NativeModel {
  /** Queues a run on the model's worker thread; returns its id. Events arrive in batches, in
   * order; the 'end' event is always the last one, exactly once per run. */
  run(input: RKLLMInput, infer: RKLLMInferParam, listener: RunEventsListener): number;
  /** Removes a queued run (its 'end' is 'aborted') or aborts it if running. False if unknown. */
  cancel(runId: number): boolean;
  /** rkllm_abort on whatever runs now (off the JS thread); resolves to its return code. */
  abort(): Promise<number>;
  /** Normalised across ABIs. Cheap: never waits behind a run. */
  isRunning(): boolean;
  /** One size per batch entry (n_batch). Cheap: never waits behind a run. */
  getKvCacheSize(): number[];
  loadLora(adapter: RKLLMLoraAdapter): Promise<number>;
  loadPromptCache(path: string): Promise<number>;
  releasePromptCache(): Promise<number>;
  clearKvCache(keepSystemPrompt: boolean, startPos?: IntArray, endPos?: IntArray): Promise<number>;
  setChatTemplate(systemPrompt: string, promptPrefix: string, promptPostfix: string): Promise<number>;
  setFunctionTools(systemPrompt: string, tools: string, toolResponseStr: string): Promise<number>;
  setCrossAttnParams(params: RKLLMCrossAttnParam): Promise<number>;
  /** Aborts and drops queued runs, then rkllm_destroy; later calls reject with MODEL_DESTROYED. */
  destroy(): Promise<number>;
  readonly destroyed: boolean;
}

export interface NativeRuntime {
  readonly info: NativeRuntimeInfo;
  /** The runtime's own defaults (rkllm_createDefaultParam), as this ABI reports them. */
  createDefaultParam(): RKLLMParam;
  /** rkllm_init on a new worker thread; param must be complete (defaults merged by the caller). */
  init(param: RKLLMParam): Promise<NativeModel>;
}

export interface NativeBinding {
  /** Registers the error class that native errors are constructed from (new cls(message, code)). */
  setErrorClass(cls: typeof RkllmError): void;
  /** dlopen + resolve 15 functions + decide the ABI, off the JS thread. path may be a bare name
   * for the dynamic loader's search. */
  openRuntime(options: { path: string; abi?: AbiName }): Promise<NativeRuntime>;
}
