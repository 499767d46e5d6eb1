// The RKLLM structs as JSON-RPC params: the structs of native/structs as they are, or with what
// the server adds (members it fills in from defaults made optional, its own words and limits on
// paths). Structs refuse unknown members, so a misspelt key is an error naming it rather than a
// setting silently ignored; so does the top of every method's params (./define).

import { CloneType, Type, type StringOptions, type TSchema } from '@sinclair/typebox';
import * as Structs from '../native/structs';
import { nullIsAValue } from './absent-nulls';

const strict = { additionalProperties: false } as const;

/** A string member of a struct with the server's own constraints and words added. */
function refine<T extends TSchema>(member: T, options: StringOptions): T {
  return CloneType(member, options);
}

// null is C's NULL handle, which names no model: refused, never read as "left out" (./absent-nulls).
export const Handle = Type.Optional(
  nullIsAValue(Type.String({ minLength: 1, description: 'The model handle; may be left out when exactly one model is loaded' })),
);

/** RKLLMExtendParam's reserved bytes, which the server always zero-fills. */
const RESERVED_BYTES = 104;

/**
 * Any subset: the rest comes from the runtime's defaults. `reserved` is accepted as C clients
 * write it (NULL, or the zeroed bytes) and never passed on.
 */
export const ExtendParam = Type.Object(
  {
    ...Type.Partial(Structs.ExtendParam).properties,
    reserved: Type.Optional(
      Type.Array(Type.Literal(0), {
        maxItems: RESERVED_BYTES,
        description: `The C struct's reserved bytes: null, or at most ${RESERVED_BYTES} zeros; the server zero-fills them`,
      }),
    ),
  },
  strict,
);

export const RKLLMParam = Type.Object(
  {
    ...Type.Partial(Structs.RKLLMParam).properties,
    model_path: refine(Structs.RKLLMParam.properties.model_path, {
      minLength: 1,
      description: "A file inside the server's models directories, or 'sim:NAME' on the emulated runtime",
    }),
    extend_param: Type.Optional(ExtendParam),
  },
  strict,
);

/** The members of RKLLMInput; also accepted flat at the top of rkllm_run's params. */
export const INPUT_MEMBERS = Structs.RKLLMInput.properties;

export const RKLLMInput = Structs.RKLLMInput;

/** mode and keep_history may be left out (generate, no history). */
export const RKLLMInferParams = Type.Object(
  {
    ...Type.Partial(Structs.RKLLMInferParam).properties,
    prompt_cache_params: Type.Optional(
      Type.Object(
        {
          ...Structs.PromptCacheParam.properties,
          prompt_cache_path: refine(Structs.PromptCacheParam.properties.prompt_cache_path, {
            description: "Inside the server's cache directory",
          }),
        },
        strict,
      ),
    ),
  },
  strict,
);

export const LoraAdapter = Type.Object(
  {
    lora_adapter_path: refine(Structs.RKLLMLoraAdapter.properties.lora_adapter_path, {
      minLength: 1,
      description: "A file inside the server's models directories",
    }),
    lora_adapter_name: refine(Structs.RKLLMLoraAdapter.properties.lora_adapter_name, { minLength: 1 }),
    scale: Structs.RKLLMLoraAdapter.properties.scale,
  },
  strict,
);

export const CrossAttnParams = Structs.RKLLMCrossAttnParam;

/** Object schema helper: every method's params is an object (closed by ./define). */
export function Params<P extends Record<string, TSchema>>(properties: P) {
  return Type.Object(properties);
}
