// The RKLLM structs, written once: TypeBox schemas named and shaped as the native binding takes
// and reports them (the C names of rkllm.h, both ABIs' members in one struct). Everything else is
// derived from these: the binding's TypeScript types (./binding), the JSON-RPC params
// (methods/schemas) and the library's checks of RKLLMParam (runtime/param).
//
// Two facts that JSON Schema cannot say ride on symbol keys, which a JSON round trip drops, so
// clients never see them: the C type of each scalar member, and the ABIs a member exists in when
// it is not in all of them.

import { Type, type TObject, type TSchema, type StringOptions } from '@sinclair/typebox';

/** The layouts of librkllmrt: '1.2' (releases 1.2.1 to 1.2.3), '1.3' (1.3.0) and '1.3.1'. */
export type AbiName = '1.2' | '1.3' | '1.3.1';

/** Every ABI, oldest first. */
export const ABI_NAMES: readonly AbiName[] = ['1.2', '1.3', '1.3.1'];

/** The releases whose layout is supported, by release number, with the ABI each speaks. */
export const RELEASE_ABIS = { '1.2.1': '1.2', '1.2.2': '1.2', '1.2.3': '1.2', '1.3.0': '1.3', '1.3.1': '1.3.1' } as const;
export type ReleaseName = keyof typeof RELEASE_ABIS;

/**
 * How a caller names the ABI of a library: an ABI, or a release number. '1.3' stands for a 1.3.x
 * whose release is not known: the file is asked (blob id, version banner), and when it cannot
 * tell, the library gets the 1.3.1 layout with its audio block zeroed, and audio is refused.
 */
export type AbiSetting = AbiName | ReleaseName;
export const ABI_SETTINGS: readonly AbiSetting[] = [...ABI_NAMES, ...(Object.keys(RELEASE_ABIS) as ReleaseName[])].filter(
  (name, index, all) => all.indexOf(name) === index,
);

/** The 1.3 family: one layout but for the audio block that 1.3.1 adds to the multimodal input. */
const ABI_13: readonly AbiName[] = ['1.3', '1.3.1'];

/** The C type of a scalar member, as the library's checks name it in their messages. */
export type CType = 'string' | 'boolean' | 'float' | 'int8' | 'uint8' | 'int32' | 'uint32' | 'size';

/** float*: the binding takes a Float32Array as is, or an array of numbers. */
export type NumberArray = number[] | Float32Array;
/** float* as given: also base64 text of little-endian float32 values, which the binding decodes. */
export type FloatsInput = NumberArray | string;
/** int32_t*: the binding takes an Int32Array as is, or an array of integers. */
export type IntArray = number[] | Int32Array;

const C_TYPE = Symbol('RKLLM C type');
const ONLY_IN = Symbol('RKLLM ABI');

type Annotated = TSchema & { [C_TYPE]?: CType; [ONLY_IN]?: readonly AbiName[] };

// Both return a copy: a schema may be shared (a struct nested in another).
function scalar<T extends TSchema>(cType: CType, schema: T): T {
  return { ...schema, [C_TYPE]: cType };
}

/** Marks a member that exists in some ABIs only (the others ignore it). */
function onlyIn<T extends TSchema>(abis: readonly AbiName[], schema: T): T {
  return { ...schema, [ONLY_IN]: abis };
}

// int32 is bounded in the schema; the narrower integers are left open there and bounded by the
// library's checks, whose messages name the C type.
const Int32 = () => scalar('int32', Type.Integer({ minimum: -2147483648, maximum: 2147483647 }));
const Int8 = () => scalar('int8', Type.Integer());
const UInt8 = () => scalar('uint8', Type.Integer());
const UInt32 = () => scalar('uint32', Type.Integer());
const Size = () => scalar('size', Type.Integer({ minimum: 0 }));
const Float = () => scalar('float', Type.Number());
const Bool = (description?: string) => scalar('boolean', Type.Boolean(description === undefined ? {} : { description }));
const CString = (options?: StringOptions) => scalar('string', Type.String(options));
/** An int32 enum with values 0..max. */
const Enum = (max: number, description: string) => scalar('int32', Type.Integer({ minimum: 0, maximum: max, description }));
/** An int32 the C API uses as a flag: a boolean, or 0/1. */
const IntFlag = () => scalar('int32', Type.Union([Type.Boolean(), Type.Integer()]));
const FloatArray = () =>
  Type.Unsafe<FloatsInput>(
    Type.Union([
      Type.Array(Type.Number()),
      Type.String({ contentEncoding: 'base64', description: 'base64 of little-endian float32 values' }),
    ]),
  );
const Int32Array = () => Type.Unsafe<IntArray>(Type.Array(Type.Integer()));

/** The C type of a member schema; undefined for structs and arrays. */
export function cTypeOf(member: TSchema): CType | undefined {
  return (member as Annotated)[C_TYPE];
}

/** The ABIs a member exists in; undefined when it is in all of them. */
export function onlyInAbi(member: TSchema): readonly AbiName[] | undefined {
  return (member as Annotated)[ONLY_IN];
}

/** The members of `struct` that exist in `abi`, in declaration order. */
export function membersIn(struct: TObject, abi: AbiName): string[] {
  return Object.entries(struct.properties)
    .filter(([, member]) => onlyInAbi(member)?.includes(abi) ?? true)
    .map(([name]) => name);
}

// Structs are closed: they have exactly the members listed.
const closed = { additionalProperties: false } as const;

export const ExtendParam = Type.Object(
  {
    base_domain_id: Int32(),
    embed_flash: Int8(),
    enabled_cpus_num: Int8(),
    enabled_cpus_mask: UInt32(),
    n_batch: UInt8(),
    use_cross_attn: Int8(),
  },
  closed,
);

export const RKLLMParam = Type.Object(
  {
    model_path: CString(),
    max_context_len: Int32(),
    max_new_tokens: Int32(),
    top_k: Int32(),
    n_keep: Int32(),
    top_p: Float(),
    temperature: Float(),
    repeat_penalty: Float(),
    frequency_penalty: Float(),
    presence_penalty: Float(),
    mirostat: Int32(),
    mirostat_tau: Float(),
    mirostat_eta: Float(),
    skip_special_token: Bool(),
    ignore_eos_token: Type.Optional(onlyIn(ABI_13, Bool('ABI 1.3 and 1.3.1 only'))),
    is_async: Bool(),
    img_start: Type.Optional(onlyIn(['1.2'], CString({ description: 'ABI 1.2 only' }))),
    img_end: Type.Optional(onlyIn(['1.2'], CString({ description: 'ABI 1.2 only' }))),
    img_content: Type.Optional(onlyIn(['1.2'], CString({ description: 'ABI 1.2 only' }))),
    extend_param: ExtendParam,
  },
  closed,
);

export const MultimodalInput = Type.Object(
  {
    prompt: CString(),
    image_embed: Type.Optional(FloatArray()),
    n_image_tokens: Type.Optional(Size()),
    n_image: Type.Optional(Size()),
    image_width: Type.Optional(Size()),
    image_height: Type.Optional(Size()),
    image_start: Type.Optional(onlyIn(ABI_13, CString())),
    image_end: Type.Optional(onlyIn(ABI_13, CString())),
    image_content: Type.Optional(onlyIn(ABI_13, CString())),
    video_embed: Type.Optional(onlyIn(ABI_13, FloatArray())),
    n_frame_tokens: Type.Optional(onlyIn(ABI_13, Size())),
    n_frame_per_video: Type.Optional(onlyIn(ABI_13, Size())),
    n_video: Type.Optional(onlyIn(ABI_13, Size())),
    video_start: Type.Optional(onlyIn(ABI_13, CString())),
    video_end: Type.Optional(onlyIn(ABI_13, CString())),
    video_content: Type.Optional(onlyIn(ABI_13, CString())),
    frame_width: Type.Optional(onlyIn(ABI_13, Size())),
    frame_height: Type.Optional(onlyIn(ABI_13, Size())),
    // ABI 1.3.1's audio block: n_audio x n_audio_tokens x the model's embedding size floats.
    audio_embed: Type.Optional(onlyIn(['1.3.1'], FloatArray())),
    n_audio_tokens: Type.Optional(onlyIn(['1.3.1'], Size())),
    n_audio: Type.Optional(onlyIn(['1.3.1'], Size())),
    audio_start: Type.Optional(onlyIn(['1.3.1'], CString())),
    audio_end: Type.Optional(onlyIn(['1.3.1'], CString())),
    audio_content: Type.Optional(onlyIn(['1.3.1'], CString())),
  },
  closed,
);

export const EmbedInput = Type.Object({ embed: FloatArray(), n_tokens: Size() }, closed);

/** RKLLMInput. Exactly the member named by input_type must be present (token_input is the
 * C struct's input_ids, its length being n_tokens). */
export const RKLLMInput = Type.Object(
  {
    input_type: Enum(3, 'RKLLMInputType: 0 prompt, 1 token, 2 embed, 3 multimodal'),
    role: Type.Optional(CString({ description: '"user" (default) or "tool"' })),
    enable_thinking: Type.Optional(Bool()),
    prompt_input: Type.Optional(CString()),
    token_input: Type.Optional(Int32Array()),
    embed_input: Type.Optional(EmbedInput),
    multimodal_input: Type.Optional(MultimodalInput),
  },
  closed,
);

export const LoraParam = Type.Object({ lora_adapter_name: CString() }, closed);

export const PromptCacheParam = Type.Object(
  {
    save_prompt_cache: IntFlag(),
    prompt_cache_path: Type.Optional(CString()),
  },
  closed,
);

export const SamplingParam = Type.Object(
  {
    top_k: Int32(),
    top_p: Float(),
    temperature: Float(),
    repeat_penalty: Float(),
    frequency_penalty: Float(),
    presence_penalty: Float(),
    mirostat: Int32(),
    mirostat_tau: Float(),
    mirostat_eta: Float(),
  },
  closed,
);

export const RKLLMInferParam = Type.Object(
  {
    mode: Enum(2, 'RKLLMInferMode: 0 generate, 1 last hidden layer, 2 logits'),
    lora_params: Type.Optional(LoraParam),
    prompt_cache_params: Type.Optional(PromptCacheParam),
    sampling_params: Type.Optional(onlyIn(ABI_13, SamplingParam)),
    keep_history: IntFlag(),
    max_new_tokens: Type.Optional(onlyIn(ABI_13, Int32())),
  },
  closed,
);

export const RKLLMLoraAdapter = Type.Object(
  {
    lora_adapter_path: CString(),
    lora_adapter_name: CString(),
    scale: Float(),
  },
  closed,
);

export const RKLLMCrossAttnParam = Type.Object(
  {
    encoder_k_cache: FloatArray(),
    encoder_v_cache: FloatArray(),
    encoder_mask: FloatArray(),
    encoder_pos: Int32Array(),
    // Bounded by the addon, to 0..INT32_MAX and to the arrays' lengths.
    num_tokens: scalar('int32', Type.Integer()),
  },
  closed,
);
