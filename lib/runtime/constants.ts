// The enums of the RKLLM C API by their C enumerator names (same values in both ABIs), so that
// clients in any language can name them the way Rockchip's documentation does.

export const LLMCallState = {
  RKLLM_RUN_NORMAL: 0,
  /** The token ended inside a UTF-8 character; its bytes come with the next token. */
  RKLLM_RUN_WAITING: 1,
  RKLLM_RUN_FINISH: 2,
  RKLLM_RUN_ERROR: 3,
} as const;

export const RKLLMInputType = {
  RKLLM_INPUT_PROMPT: 0,
  RKLLM_INPUT_TOKEN: 1,
  RKLLM_INPUT_EMBED: 2,
  RKLLM_INPUT_MULTIMODAL: 3,
} as const;

export const RKLLMInferMode = {
  RKLLM_INFER_GENERATE: 0,
  RKLLM_INFER_GET_LAST_HIDDEN_LAYER: 1,
  RKLLM_INFER_GET_LOGITS: 2,
} as const;

/** Bits of extend_param.enabled_cpus_mask (RK3588's big cores are CPU4..CPU7: 0xF0). */
export const CPUMask = {
  CPU0: 1 << 0,
  CPU1: 1 << 1,
  CPU2: 1 << 2,
  CPU3: 1 << 3,
  CPU4: 1 << 4,
  CPU5: 1 << 5,
  CPU6: 1 << 6,
  CPU7: 1 << 7,
} as const;

export type LLMCallStateValue = (typeof LLMCallState)[keyof typeof LLMCallState];
export type RKLLMInputTypeValue = (typeof RKLLMInputType)[keyof typeof RKLLMInputType];
export type RKLLMInferModeValue = (typeof RKLLMInferMode)[keyof typeof RKLLMInferMode];

/** All of them in one object, as a runtime reports them to clients. */
export const RKLLM_CONSTANTS = Object.freeze({
  LLMCallState: Object.freeze(LLMCallState),
  RKLLMInputType: Object.freeze(RKLLMInputType),
  RKLLMInferMode: Object.freeze(RKLLMInferMode),
  CPUMask: Object.freeze(CPUMask),
});

export type RkllmConstants = typeof RKLLM_CONSTANTS;
