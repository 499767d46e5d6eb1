// The request bodies of the /api routes as TypeBox schemas. Ollama ignores members it does not
// know, and so do these (additional members pass); members it knows that this server cannot
// honour (format, images, suffix, template) are refused in api.ts with a sentence naming them.

import { Type, type Static } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';

/** A duration as Ollama takes it: a number (seconds) or a Go duration string ("5m", "1h30m", "-1"). */
const KeepAlive = Type.Optional(Type.Union([Type.Number(), Type.String()]));

/** Token counts go to the runtime as int32. */
const TokenCount = Type.Integer({ maximum: 2_147_483_647 });

/** Ollama's `options`, the members this server reads; the rest of Ollama's are accepted and ignored (docs/ollama.md). */
const Options = Type.Optional(
  Type.Object({
    num_ctx: Type.Optional(Type.Integer({ minimum: 1 })),
    num_predict: Type.Optional(TokenCount),
    temperature: Type.Optional(Type.Number({ minimum: 0 })),
    top_k: Type.Optional(Type.Integer({ minimum: 0 })),
    top_p: Type.Optional(Type.Number({ minimum: 0, maximum: 1 })),
    repeat_penalty: Type.Optional(Type.Number({ minimum: 0 })),
    presence_penalty: Type.Optional(Type.Number()),
    frequency_penalty: Type.Optional(Type.Number()),
    stop: Type.Optional(Type.Array(Type.String())),
    seed: Type.Optional(Type.Integer()),
  }),
);

const ToolCall = Type.Object({
  function: Type.Object({ name: Type.String({ minLength: 1 }), arguments: Type.Optional(Type.Record(Type.String(), Type.Unknown())) }),
});

const Message = Type.Object({
  role: Type.Union([Type.Literal('system'), Type.Literal('user'), Type.Literal('assistant'), Type.Literal('tool')]),
  content: Type.Optional(Type.String()),
  images: Type.Optional(Type.Union([Type.Array(Type.String()), Type.Null()])),
  tool_calls: Type.Optional(Type.Array(ToolCall)),
  thinking: Type.Optional(Type.String()),
  tool_name: Type.Optional(Type.String()),
});

const Tool = Type.Object({
  type: Type.Literal('function'),
  function: Type.Object({
    name: Type.String({ minLength: 1 }),
    description: Type.Optional(Type.String()),
    parameters: Type.Optional(Type.Unknown()),
  }),
});

const common = {
  model: Type.String({ minLength: 1 }),
  stream: Type.Optional(Type.Boolean()),
  keep_alive: KeepAlive,
  options: Options,
  format: Type.Optional(Type.Unknown()),
  think: Type.Optional(Type.Union([Type.Boolean(), Type.String()])),
};

export const ChatRequest = Type.Object({
  ...common,
  messages: Type.Optional(Type.Array(Message)),
  tools: Type.Optional(Type.Array(Tool)),
});

export const GenerateRequest = Type.Object({
  ...common,
  prompt: Type.Optional(Type.String()),
  suffix: Type.Optional(Type.String()),
  system: Type.Optional(Type.String()),
  template: Type.Optional(Type.String()),
  context: Type.Optional(Type.Array(Type.Integer())),
  raw: Type.Optional(Type.Boolean()),
  images: Type.Optional(Type.Union([Type.Array(Type.String()), Type.Null()])),
});

export const ShowRequest = Type.Object({
  model: Type.Optional(Type.String({ minLength: 1 })),
  /** The older name of `model`, still sent by some clients. */
  name: Type.Optional(Type.String({ minLength: 1 })),
});

export const EmbedRequest = Type.Object({
  model: Type.String({ minLength: 1 }),
  input: Type.Union([Type.String(), Type.Array(Type.String(), { minItems: 1 })]),
  truncate: Type.Optional(Type.Boolean()),
  keep_alive: KeepAlive,
  options: Options,
  dimensions: Type.Optional(Type.Integer({ minimum: 1 })),
});

/** The legacy route's body: one prompt. */
export const EmbeddingsRequest = Type.Object({
  model: Type.String({ minLength: 1 }),
  prompt: Type.String(),
  keep_alive: KeepAlive,
  options: Options,
});

export type ChatRequest = Static<typeof ChatRequest>;
export type EmbedRequest = Static<typeof EmbedRequest>;
export type EmbeddingsRequest = Static<typeof EmbeddingsRequest>;
export type GenerateRequest = Static<typeof GenerateRequest>;
export type ShowRequest = Static<typeof ShowRequest>;
export type OllamaMessage = Static<typeof Message>;
export type OllamaOptions = NonNullable<Static<typeof Options>>;

export const chatRequestCheck = TypeCompiler.Compile(ChatRequest);
export const generateRequestCheck = TypeCompiler.Compile(GenerateRequest);
export const embedRequestCheck = TypeCompiler.Compile(EmbedRequest);
export const embeddingsRequestCheck = TypeCompiler.Compile(EmbeddingsRequest);
export const showRequestCheck = TypeCompiler.Compile(ShowRequest);
