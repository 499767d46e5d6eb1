// The RKLLM structs as TypeBox schemas, named and shaped as in the C API (docs/rkllm-abi.md). Nested
// structs refuse unknown members, so a misspelt key is an error naming it rather than a setting
// silently ignored; the top level of params tolerates extras.

import { Type, type TSchema } from '@sinclair/typebox';

const Int32 = Type.Integer({ minimum: -2147483648, maximum: 2147483647 });
const Float = Type.Number();
const NumberArray = Type.Array(Type.Number());
const IntArray = Type.Array(Type.Integer());
const strict = { additionalProperties: false } as const;

export const Handle = Type.Optional(
  Type.String({ minLength: 1, description: 'The model handle; may be left out when exactly one model is loaded' }),
);

export const ExtendParam = Type.Object(
  {
    base_domain_id: Type.Optional(Int32),
    embed_flash: Type.Optional(Type.Integer()),
    enabled_cpus_num: Type.Optional(Type.Integer()),
    enabled_cpus_mask: Type.Optional(Type.Integer()),
    n_batch: Type.Optional(Type.Integer()),
    use_cross_attn: Type.Optional(Type.Integer()),
  },
  strict,
);

export const RKLLMParam = Type.Object(
  {
    model_path: Type.String({ minLength: 1, description: "A file inside the server's models directories, or 'sim:NAME' on the emulated runtime" }),
    max_context_len: Type.Optional(Int32),
    max_new_tokens: Type.Optional(Int32),
    top_k: Type.Optional(Int32),
    n_keep: Type.Optional(Int32),
    top_p: Type.Optional(Float),
    temperature: Type.Optional(Float),
    repeat_penalty: Type.Optional(Float),
    frequency_penalty: Type.Optional(Float),
    presence_penalty: Type.Optional(Float),
    mirostat: Type.Optional(Int32),
    mirostat_tau: Type.Optional(Float),
    mirostat_eta: Type.Optional(Float),
    skip_special_token: Type.Optional(Type.Boolean()),
    ignore_eos_token: Type.Optional(Type.Boolean({ description: 'ABI 1.3 only' })),
    is_async: Type.Optional(Type.Boolean()),
    img_start: Type.Optional(Type.String({ description: 'ABI 1.2 only' })),
    img_end: Type.Optional(Type.String({ description: 'ABI 1.2 only' })),
    img_content: Type.Optional(Type.String({ description: 'ABI 1.2 only' })),
    extend_param: Type.Optional(ExtendParam),
  },
  strict,
);

const MultimodalInput = Type.Object(
  {
    prompt: Type.String(),
    image_embed: Type.Optional(NumberArray),
    n_image_tokens: Type.Optional(Type.Integer({ minimum: 0 })),
    n_image: Type.Optional(Type.Integer({ minimum: 0 })),
    image_width: Type.Optional(Type.Integer({ minimum: 0 })),
    image_height: Type.Optional(Type.Integer({ minimum: 0 })),
    image_start: Type.Optional(Type.String()),
    image_end: Type.Optional(Type.String()),
    image_content: Type.Optional(Type.String()),
    video_embed: Type.Optional(NumberArray),
    n_frame_tokens: Type.Optional(Type.Integer({ minimum: 0 })),
    n_frame_per_video: Type.Optional(Type.Integer({ minimum: 0 })),
    n_video: Type.Optional(Type.Integer({ minimum: 0 })),
    video_start: Type.Optional(Type.String()),
    video_end: Type.Optional(Type.String()),
    video_content: Type.Optional(Type.String()),
    frame_width: Type.Optional(Type.Integer({ minimum: 0 })),
    frame_height: Type.Optional(Type.Integer({ minimum: 0 })),
  },
  strict,
);

/** The members of RKLLMInput; also accepted flat at the top of rkllm_run's params. */
export const INPUT_MEMBERS = {
  input_type: Type.Integer({ minimum: 0, maximum: 3, description: 'RKLLMInputType: 0 prompt, 1 token, 2 embed, 3 multimodal' }),
  role: Type.Optional(Type.String({ description: '"user" (default) or "tool"' })),
  enable_thinking: Type.Optional(Type.Boolean()),
  prompt_input: Type.Optional(Type.String()),
  token_input: Type.Optional(IntArray),
  embed_input: Type.Optional(Type.Object({ embed: NumberArray, n_tokens: Type.Integer({ minimum: 0 }) }, strict)),
  multimodal_input: Type.Optional(MultimodalInput),
};

export const RKLLMInput = Type.Object(INPUT_MEMBERS, strict);

const SamplingParam = Type.Object(
  {
    top_k: Int32,
    top_p: Float,
    temperature: Float,
    repeat_penalty: Float,
    frequency_penalty: Float,
    presence_penalty: Float,
    mirostat: Int32,
    mirostat_tau: Float,
    mirostat_eta: Float,
  },
  strict,
);

export const RKLLMInferParams = Type.Object(
  {
    mode: Type.Optional(Type.Integer({ minimum: 0, maximum: 2, description: 'RKLLMInferMode: 0 generate, 1 last hidden layer, 2 logits' })),
    lora_params: Type.Optional(Type.Object({ lora_adapter_name: Type.String() }, strict)),
    prompt_cache_params: Type.Optional(
      Type.Object(
        {
          save_prompt_cache: Type.Union([Type.Boolean(), Type.Integer()]),
          prompt_cache_path: Type.Optional(Type.String({ description: "Inside the server's cache directory" })),
        },
        strict,
      ),
    ),
    sampling_params: Type.Optional(SamplingParam),
    keep_history: Type.Optional(Type.Union([Type.Boolean(), Type.Integer()])),
    max_new_tokens: Type.Optional(Int32),
  },
  strict,
);

export const LoraAdapter = Type.Object(
  {
    lora_adapter_path: Type.String({ minLength: 1, description: "A file inside the server's models directories" }),
    lora_adapter_name: Type.String({ minLength: 1 }),
    scale: Type.Number(),
  },
  strict,
);

export const CrossAttnParams = Type.Object(
  {
    encoder_k_cache: NumberArray,
    encoder_v_cache: NumberArray,
    encoder_mask: NumberArray,
    encoder_pos: IntArray,
    num_tokens: Type.Integer(),
  },
  strict,
);

/** Object schema helper: every method's params is an object; extras at the top are tolerated. */
export function Params<P extends Record<string, TSchema>>(properties: P) {
  return Type.Object(properties);
}
