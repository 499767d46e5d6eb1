// The one small interface through which the core reaches a runtime and its models: what
// lib/runtime's Runtime and Model offer it today. The core never names those classes, so a
// proxy (a model living in a host process of its own) can take a model's place without the
// core changing.

import type { NativeRuntimeInfo, RKLLMCrossAttnParam, RKLLMInput, RKLLMLoraAdapter, RKLLMParam, IntArray } from '../native/binding';
import type { PartialInferParam } from '../runtime/model';
import type { PartialParam } from '../runtime/param';
import type { RunChunk, RunResult } from '../runtime/run';

/** One inference on a model: its chunks pushed in the runtime's batches, its result awaited. */
export interface ModelRun extends PromiseLike<RunResult> {
  /** Stops the run, queued or running; false when it has already ended. */
  cancel(): boolean;
  /**
   * Delivers every chunk, in order, in the batches the runtime reported them (one call per
   * batch, synchronously as it arrives). Set before the first batch can arrive: right after
   * the run is started.
   */
  onChunks(listener: (chunks: readonly RunChunk[]) => void): void;
}

export interface ModelPort {
  run(input: RKLLMInput, infer: PartialInferParam): ModelRun;
  abort(): Promise<number>;
  isRunning(): boolean;
  getKvCacheSize(): number[];
  loadLora(adapter: RKLLMLoraAdapter): Promise<number>;
  loadPromptCache(path: string): Promise<number>;
  releasePromptCache(): Promise<number>;
  clearKvCache(keepSystemPrompt: boolean, startPos?: IntArray, endPos?: IntArray): Promise<number>;
  setChatTemplate(systemPrompt: string, promptPrefix: string, promptPostfix: string): Promise<number>;
  setFunctionTools(systemPrompt: string, tools: string | object[], toolResponseStr: string): Promise<number>;
  setCrossAttnParams(params: RKLLMCrossAttnParam): Promise<number>;
  destroy(): Promise<number>;
  readonly destroyed: boolean;
}

export interface RuntimePort {
  readonly info: NativeRuntimeInfo;
  createDefaultParam(): RKLLMParam;
  loadModel(param: PartialParam): Promise<ModelPort>;
}
