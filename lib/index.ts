// The public API of rkllm-serve's library layer.

export { RkllmError, RKLLM_ERROR_CODES, isRkllmError, type RkllmErrorCode } from './errors';
export { openRuntime, Runtime, type OpenRuntimeOptions } from './runtime/runtime';
export { Model, type PartialInferParam } from './runtime/model';
export { Run, type RunChunk, type RunResult, type RunOptions, type LogitsBlock, type HiddenLayerBlock } from './runtime/run';
export { type PartialParam } from './runtime/param';
export {
  LLMCallState,
  RKLLMInputType,
  RKLLMInferMode,
  CPUMask,
  RKLLM_CONSTANTS,
  type RkllmConstants,
  type LLMCallStateValue,
  type RKLLMInputTypeValue,
  type RKLLMInferModeValue,
} from './runtime/constants';
export {
  SIM_RUNTIME,
  SIM_MODEL_PREFIX,
  DEFAULT_SIM_ABI,
  emulatedRuntimePath,
  listSimModels,
  resolveModelPath,
  simModelDirectory,
} from './runtime/emulated';
export { addonDirectory } from './native/load';
export { packageRoot } from './package-root';
export { ABI_NAMES, ABI_SETTINGS, RELEASE_ABIS } from './native/structs';
export type {
  AbiName,
  AbiSetting,
  AbiSource,
  ExtendParam,
  FloatBlock,
  FloatsInput,
  IntArray,
  MultimodalInput,
  NativeRuntimeInfo,
  NumberArray,
  Perf,
  RKLLMCrossAttnParam,
  RKLLMInferParam,
  RKLLMInput,
  RKLLMLoraAdapter,
  ReleaseName,
  RKLLMParam,
  SamplingParam,
} from './native/binding';
