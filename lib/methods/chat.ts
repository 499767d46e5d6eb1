// rkllm_chat: the chat API over JSON-RPC, for clients that want the server to keep their
// conversation rather than drive the runtime's calls themselves. It takes OpenAI-shaped messages
// and goes through the very path of /v1/chat/completions and /api/chat (lib/core/conversation.ts,
// lib/core/generation.ts): the model's chat template, the context budget, the KV cache kept
// across turns and the prompt caches across conversations, all shared with those front ends. Its
// stream, where the connection can be pushed to, is rkllm_run's: the same rkllm_result
// notifications, the reply after the last one.

import { Type, type Static } from '@sinclair/typebox';
import { chatModelView } from '../core/chat-model';
import { planChat, splitMessages } from '../core/conversation';
import { endedError } from '../core/job';
import type { LoadedModel } from '../core/models';
import { generationFigures, runtimeTokenLimit, samplingInfer, startGeneration } from '../core/generation';
import { chatReplyOf, type ChatReply } from '../core/tool-calls';
import { RkllmError, invalidArgument } from '../errors';
import type { MethodContext } from './context';
import { defineMethod, type MethodEntry } from './define';

const strict = { additionalProperties: false } as const;

const TextPart = Type.Object({ type: Type.Literal('text'), text: Type.String() }, strict);

const MessageToolCall = Type.Object(
  {
    id: Type.Optional(Type.String()),
    type: Type.Optional(Type.Literal('function')),
    function: Type.Object({ name: Type.String({ minLength: 1 }), arguments: Type.String({ description: 'The arguments as a JSON text' }) }, strict),
  },
  strict,
);

const Message = Type.Object(
  {
    role: Type.Union([Type.Literal('system'), Type.Literal('developer'), Type.Literal('user'), Type.Literal('assistant'), Type.Literal('tool')]),
    content: Type.Optional(Type.Union([Type.String(), Type.Array(TextPart), Type.Null()])),
    name: Type.Optional(Type.String()),
    tool_calls: Type.Optional(Type.Array(MessageToolCall)),
    tool_call_id: Type.Optional(Type.String()),
  },
  strict,
);

const FunctionTool = Type.Object(
  {
    type: Type.Literal('function'),
    function: Type.Object(
      {
        name: Type.String({ minLength: 1 }),
        description: Type.Optional(Type.String()),
        parameters: Type.Optional(Type.Record(Type.String(), Type.Unknown(), { description: 'A JSON Schema of the arguments' })),
        strict: Type.Optional(Type.Boolean()),
      },
      strict,
    ),
  },
  strict,
);

const ToolChoice = Type.Union([
  Type.Literal('auto'),
  Type.Literal('none'),
  Type.Literal('required'),
  Type.Object({ type: Type.Literal('function'), function: Type.Optional(Type.Object({ name: Type.String({ minLength: 1 }) }, strict)) }, strict),
]);

export const ChatParams = Type.Object({
  model: Type.Optional(
    Type.String({ minLength: 1, description: 'A catalog name or alias (loaded on demand), or a handle; may be left out when exactly one model is loaded' }),
  ),
  messages: Type.Array(Message, { minItems: 1, description: "The whole conversation, OpenAI's shape; the last one other than system ones is a user or tool message" }),
  tools: Type.Optional(Type.Array(FunctionTool)),
  tool_choice: Type.Optional(ToolChoice),
  // int32 in RKLLMInferParam.max_new_tokens: bounded here, so a refusal names the member.
  max_tokens: Type.Optional(Type.Integer({ minimum: 1, maximum: 2_147_483_647, description: 'The most tokens the answer may have' })),
  temperature: Type.Optional(Type.Number({ minimum: 0, maximum: 2 })),
  top_p: Type.Optional(Type.Number({ minimum: 0, maximum: 1 })),
  top_k: Type.Optional(Type.Integer({ minimum: 0, maximum: 2_147_483_647 })),
  repeat_penalty: Type.Optional(Type.Number({ minimum: 0 })),
  frequency_penalty: Type.Optional(Type.Number({ minimum: -2, maximum: 2 })),
  presence_penalty: Type.Optional(Type.Number({ minimum: -2, maximum: 2 })),
  stream: Type.Optional(Type.Boolean({ description: 'Push rkllm_result notifications before the result (where the connection can be pushed to)' })),
});

type ChatParamsType = Static<typeof ChatParams>;

/** The model a chat names: a catalog model loaded on demand, a handle; none: the only model loaded. */
async function chatModel(context: MethodContext, name: string | undefined): Promise<LoadedModel> {
  const { core } = context;
  if (name !== undefined) return core.residency.acquire(name);
  try {
    return core.models.resolve(undefined);
  } catch (error) {
    // The other methods call that member handle; here it is model.
    throw error instanceof RkllmError && error.field === 'handle' ? error.withField('model') : error;
  }
}

async function chat(params: ChatParamsType, context: MethodContext): Promise<unknown> {
  const { core, connection } = context;
  const loaded = await chatModel(context, params.model);
  // The model may have taken a while to load: a client gone meanwhile asks for nothing more.
  if (core.sessions.isClosed(connection)) throw endedError('connection_closed');
  core.checkAccepting();
  const turn = splitMessages(params.messages, params.tools, params.tool_choice);
  const last = turn.history[turn.history.length - 1];
  if (!last || (last.role !== 'user' && last.role !== 'tool')) {
    throw invalidArgument('messages', 'the last message other than system ones must be a user or tool message: the model answers it');
  }
  const maxTokens = params.max_tokens;
  const view = chatModelView(core, loaded, context.chatSettings(loaded));
  const plan = planChat(loaded, turn, samplingInfer(core, params, maxTokens), { view, maxTokens });
  const toolsActive = turn.toolsJson !== undefined;
  let reply: ChatReply | undefined;
  const generation = startGeneration(core, loaded, {
    prepare: () => plan.prepare(),
    // Remembered as the job settles, so a request queued behind this one sees the conversation.
    onSettled: (output, error) => {
      if (output === undefined || output.cut) {
        plan.forget(error);
        return;
      }
      reply = chatReplyOf(output, toolsActive);
      plan.remember(reply.message, output.promptTokens);
    },
    stop: [],
    maxTokens,
    runtimeTokenLimit: runtimeTokenLimit(core, view, maxTokens),
    contextLength: view.contextLength,
    truncation: view.settings.truncation ?? 'refuse',
    thinking: view.settings.thinking,
    contextFull: () => (loaded.model.getKvCacheSize()[0] ?? 0) >= view.contextLength,
    // A plain HTTP request cannot be pushed to: it gets the answer alone (a poll-only stream would end without the chat's result).
    client: { requestId: context.requestId ?? null, session: context.session(), stream: params.stream === true && connection.canPush },
  });
  if (generation.stream && connection.holdUntilStreamsEnd) context.holdUntil(generation.stream.ended);
  context.notes.model = loaded.handle;
  const output = await generation.done;
  context.notes.figures = generationFigures(generation, output);
  const { message, finishReason } = reply ?? chatReplyOf(output, toolsActive);
  return {
    model: loaded.handle,
    message,
    finish_reason: finishReason,
    usage: { prompt_tokens: output.promptTokens, completion_tokens: output.completionTokens, cached_tokens: plan.cachedTokens(output.promptTokens) },
  };
}

export const chatMethods: MethodEntry[] = [
  defineMethod({
    name: 'rkllm_chat',
    description:
      'Extension: a chat turn on the server-kept conversation, as /v1/chat/completions takes it (messages, tools, sampling): ' +
      "the model's chat template, its context budget, the KV cache and prompt caches reused across turns and conversations. " +
      'Answers { model, message, finish_reason, usage }; with stream: true, rkllm_result notifications come first where the connection can be pushed to.',
    params: ChatParams,
    cheap: false,
    handler: (params, context) => chat(params, context),
  }),
];
