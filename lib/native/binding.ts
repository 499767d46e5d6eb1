// The shape of the native module (build/Release/rkllm_serve.node), declared once. Everything in
// lib/ that touches the addon is typed from these declarations; addon/ implements them.
//
// Field names follow the C names of the RKLLM API (snake_case) so that objects can pass between
// JSON-RPC clients, this layer and the runtime without renaming. The RKLLM structs themselves are
// written once, as schemas, in ./structs; their types here are derived from those.

import type { Static } from '@sinclair/typebox';
import type { RkllmError } from '../errors';
import type { AbiName, AbiSetting, IntArray } from './structs';
import type * as Structs from './structs';

export type { AbiName, AbiSetting, FloatsInput, IntArray, NumberArray, ReleaseName } from './structs';

/** How the ABI of the opened library was decided (docs/rkllm-abi.md, "Telling the ABI"). */
export type AbiSource = 'explicit' | 'emulated-marker' | 'blob-id' | 'version-string';

export interface NativeRuntimeInfo {
  /** The file that was opened (resolved by the dynamic loader when a bare name was given). */
  path: string;
  abi: AbiName;
  abiSource: AbiSource;
  /** True when the library is the project's emulated runtime. */
  emulated: boolean;
  /** The release, when known: named by the caller, matched by blob id ("1.3.0 (aarch64)") or
   * read from the library's version banner. */
  release?: string;
  /** How an ABI '1.3' request was settled, when that took a look at the file: the ABI it was
   * narrowed to and how, or that the release could not be told (see AbiSetting). */
  note?: string;
}

/** extend_param of RKLLMParam. */
export type ExtendParam = Static<typeof Structs.ExtendParam>;
/** RKLLMParam with the fields of both ABIs; each ABI reads and reports only its own. */
export type RKLLMParam = Static<typeof Structs.RKLLMParam>;
export type MultimodalInput = Static<typeof Structs.MultimodalInput>;
/** RKLLMInput. Exactly the member named by input_type must be present. */
export type RKLLMInput = Static<typeof Structs.RKLLMInput>;
export type SamplingParam = Static<typeof Structs.SamplingParam>;
/** RKLLMInferParam. sampling_params and max_new_tokens are honoured by the 1.3 ABIs only. */
export type RKLLMInferParam = Static<typeof Structs.RKLLMInferParam>;
export type RKLLMLoraAdapter = Static<typeof Structs.RKLLMLoraAdapter>;
export type RKLLMCrossAttnParam = Static<typeof Structs.RKLLMCrossAttnParam>;

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
      /** Whole UTF-8 only; empty when WAITING. */
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
      error?: {
        code: string;
        message: string;
        fn?: string;
        returnCode?: number;
        /** Set by a model host relaying an argument error or a failure with facts (lib/host). */
        field?: string;
        reason?: string;
        facts?: Readonly<Record<string, unknown>>;
      };
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
  /** Floats per token of the model, learnt by a one-token GET_LAST_HIDDEN_LAYER run after init;
   * 0 when that run failed. Embedding arrays of runs are checked against it. */
  readonly embeddingSize: number;
}

export interface NativeRuntime {
  readonly info: NativeRuntimeInfo;
  /** The runtime's own defaults (rkllm_createDefaultParam), as this ABI reports them. */
  createDefaultParam(): RKLLMParam;
  /** rkllm_init on a new worker thread; param must be complete (defaults merged by the caller). */
  init(param: RKLLMParam): Promise<NativeModel>;
}

export interface NativeBinding {
  /** Registers the error class that native errors are constructed from (new cls(message, code, details)). */
  setErrorClass(cls: typeof RkllmError): void;
  /** dlopen + resolve 15 functions + decide the ABI, off the JS thread. path may be a bare name
   * for the dynamic loader's search. */
  openRuntime(options: { path: string; abi?: AbiSetting }): Promise<NativeRuntime>;
  /** The UTF-8 rule a model's worker applies to its result callbacks (addon/utf8_joiner.h), run on
   * given texts: what each callback hands JavaScript, then what the run's end flushes. For tests. */
  joinCallbackTexts(callbacks: { state: 0 | 1; bytes: Uint8Array }[]): { pieces: { state: 0 | 1; text: string }[]; rest: string };
  /** Linux prctl(PR_SET_PDEATHSIG, SIGKILL) for this process (a model host: it dies with the
   * server); returns getppid() once armed. */
  setParentDeathSignal(): number;
  /** From now on exit() from any thread (the runtime's included) ends the process at once with
   * its status, before the teardown registered earlier; a model host calls it once the runtime is open. */
  exitWithoutTeardown(): void;
  /** The soft RLIMIT_NPROC of this process, clamped to its hard limit; false when it could not be set. */
  setThreadLimit(soft: number): boolean;
}
