// The RKLLM structs as JSON-RPC params: the structs of native/structs as they are, or with what
// the server adds (members it fills in from defaults made optional, its own words and limits on
// paths). Structs refuse unknown members, so a misspelt key is an error naming it rather than a
// setting silently ignored; the top level of params tolerates extras.

import { CloneType, Type, type StringOptions, type TSchema } from '@sinclair/typebox';
import * as Structs from '../native/structs';

const strict = { additionalProperties: false } as const;

/** A string member of a struct with the server's own constraints and words added. */
function refine<T extends TSchema>(member: T, options: StringOptions): T {
  return CloneType(member, options);
}

export const Handle = Type.Optional(
  Type.String({ minLength: 1, description: 'The model handle; may be left out when exactly one model is loaded' }),
);

/** Any subset: the rest comes from the runtime's defaults. */
export const ExtendParam = Type.Partial(Structs.ExtendParam);

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

/** Object schema helper: every method's params is an object; extras at the top are tolerated. */
export function Params<P extends Record<string, TSchema>>(properties: P) {
  return Type.Object(properties);
}
