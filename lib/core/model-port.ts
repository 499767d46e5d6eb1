// The one small interface through which the core reaches a runtime and its models: the part of
// lib/runtime's Runtime, Model and Run that it uses, taken from them rather than restated. The
// core never names those classes, so a proxy (lib/host's HostModel, a model living in a host
// process of its own) takes a model's place without the core changing.

import type { HostStatus } from '../host/host-model';
import type { RKLLMInput } from '../native/binding';
import type { Model, PartialInferParam } from '../runtime/model';
import type { PartialParam } from '../runtime/param';
import type { Run, RunResult } from '../runtime/run';
import type { Runtime } from '../runtime/runtime';

/** One inference on a model: its chunks pushed in the runtime's batches (onChunks), its result awaited. */
export interface ModelRun extends PromiseLike<RunResult>, Pick<Run, 'cancel' | 'onChunks'> {}

/** The RKLLM calls on one loaded model the core makes, besides run. */
type ModelCalls =
  | 'abort'
  | 'isRunning'
  | 'getKvCacheSize'
  | 'loadLora'
  | 'loadPromptCache'
  | 'releasePromptCache'
  | 'clearKvCache'
  | 'setChatTemplate'
  | 'setFunctionTools'
  | 'setCrossAttnParams'
  | 'destroy'
  | 'destroyed';

export interface ModelPort extends Pick<Model, ModelCalls> {
  run(input: RKLLMInput, infer: PartialInferParam): ModelRun;
}

export interface RuntimePort extends Pick<Runtime, 'info' | 'createDefaultParam'> {
  loadModel(param: PartialParam): Promise<ModelPort>;
  /** A runtime that keeps each model in a host process (lib/host) tells of that host; in-process, absent. */
  hostStatus?(model: ModelPort): HostStatus | undefined;
  /** What the runtime holds besides its models (a spare host), released at shutdown. */
  close?(): Promise<void>;
}
