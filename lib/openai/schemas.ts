// The request bodies of the /v1 routes as TypeBox schemas, checked like JSON-RPC params are
// (lib/methods). Members OpenAI defines that this server does not serve are either refused with
// a 400 naming them (when ignoring them would change the answer: n > 1, logprobs) or, at the top
// level, tolerated and ignored (user, metadata, ...), as OpenAI's own API ignores unknown ones.

import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';

const nullable = <T extends TSchema>(schema: T) => Type.Optional(Type.Union([schema, Type.Null()]));

const TextPart = Type.Object({ type: Type.Literal('text'), text: Type.String() });

const Content = Type.Union([Type.String(), Type.Array(TextPart), Type.Null()]);

const ToolCall = Type.Object({
  id: Type.Optional(Type.String()),
  type: Type.Optional(Type.Literal('function')),
  function: Type.Object({ name: Type.String({ minLength: 1 }), arguments: Type.String() }),
});

const Message = Type.Object({
  role: Type.Union([Type.Literal('system'), Type.Literal('developer'), Type.Literal('user'), Type.Literal('assistant'), Type.Literal('tool')]),
  content: Type.Optional(Content),
  name: Type.Optional(Type.String()),
  tool_calls: Type.Optional(Type.Array(ToolCall)),
  tool_call_id: Type.Optional(Type.String()),
});

const FunctionTool = Type.Object({
  type: Type.Literal('function'),
  function: Type.Object({
    name: Type.String({ minLength: 1 }),
    description: Type.Optional(Type.String()),
    parameters: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
    strict: nullable(Type.Boolean()),
  }),
});

/** Token counts go to the runtime as int32 (RKLLMInferParam.max_new_tokens): bounded here, so a refusal names the member. */
const TokenCount = Type.Integer({ minimum: 1, maximum: 2_147_483_647 });

const Stop = nullable(Type.Union([Type.String(), Type.Array(Type.String(), { maxItems: 4 })]));

/** What both routes share: the sampling and length settings. */
const generationMembers = {
  model: Type.String({ minLength: 1 }),
  stream: nullable(Type.Boolean()),
  stream_options: nullable(Type.Object({ include_usage: Type.Optional(Type.Boolean()) })),
  max_tokens: nullable(TokenCount),
  temperature: nullable(Type.Number({ minimum: 0, maximum: 2 })),
  top_p: nullable(Type.Number({ minimum: 0, maximum: 1 })),
  frequency_penalty: nullable(Type.Number({ minimum: -2, maximum: 2 })),
  presence_penalty: nullable(Type.Number({ minimum: -2, maximum: 2 })),
  stop: Stop,
  seed: nullable(Type.Integer()),
  // One choice per request: the model runs one sequence at a time.
  n: nullable(Type.Literal(1)),
  logprobs: nullable(Type.Literal(false)),
};

export const ChatCompletionRequest = Type.Object({
  ...generationMembers,
  messages: Type.Array(Message, { minItems: 1 }),
  max_completion_tokens: nullable(TokenCount),
  tools: nullable(Type.Array(FunctionTool)),
  tool_choice: nullable(
    Type.Union([Type.Literal('auto'), Type.Literal('none'), Type.Literal('required'), Type.Object({ type: Type.Literal('function') })]),
  ),
});

export const CompletionRequest = Type.Object({
  ...generationMembers,
  prompt: Type.Union([Type.String(), Type.Array(Type.String(), { minItems: 1, maxItems: 1 })]),
  echo: nullable(Type.Literal(false)),
  suffix: nullable(Type.Literal('')),
});

/** At most this many inputs in one request: each is a run of its own, queued on the model. */
export const MAX_EMBEDDING_INPUTS = 256;

export const EmbeddingRequest = Type.Object({
  model: Type.String({ minLength: 1 }),
  // Token arrays are OpenAI's too, but RKLLM tokenizes itself: text only.
  input: Type.Union([Type.String(), Type.Array(Type.String(), { minItems: 1, maxItems: MAX_EMBEDDING_INPUTS })]),
  encoding_format: nullable(Type.Union([Type.Literal('float'), Type.Literal('base64')])),
  user: nullable(Type.String()),
});

export type ChatCompletionRequest = Static<typeof ChatCompletionRequest>;
export type EmbeddingRequest = Static<typeof EmbeddingRequest>;
export type CompletionRequest = Static<typeof CompletionRequest>;
export type ChatMessage = Static<typeof Message>;
export type FunctionTool = Static<typeof FunctionTool>;

export const chatCompletionRequestCheck = TypeCompiler.Compile(ChatCompletionRequest);
export const completionRequestCheck = TypeCompiler.Compile(CompletionRequest);
export const embeddingRequestCheck = TypeCompiler.Compile(EmbeddingRequest);
