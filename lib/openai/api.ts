// The OpenAI-compatible routes: GET /v1/models, POST /v1/chat/completions, POST /v1/completions.
// The HTTP transport hands every /v1 request here (after its API key check and body limit); this
// module answers it on the engine's own models and schedulers (ServerCore), so an OpenAI request
// and a JSON-RPC rkllm_run on one model wait in the same queue.

import { randomBytes } from 'crypto';
import type * as http from 'http';
import type { TypeCheck } from '@sinclair/typebox/compiler';
import type { TSchema } from '@sinclair/typebox';
import type { ServerCore } from '../core/core';
import type { ModelListing } from '../core/catalog';
import type { LoadedModel } from '../core/models';
import { RkllmError } from '../errors';
import { readJsonBody, writeJsonReply } from '../rpc/json-body';
import { planChat, planCompletion, splitMessages, type ChatPlan } from '../core/conversation';
import { OpenAiError, badRequest, modelNotFound, notFound, toOpenAiError, unauthorized } from './errors';
import { chatModelView, type ChatModelView, type ChatSettingsSource } from '../core/chat-model';
import { generationFigures, runtimeTokenLimit, samplingInfer, startGeneration, type Generation, type GenerationOutput, type GenerationSpec } from '../core/generation';
import {
  chatCompletionRequestCheck,
  completionRequestCheck,
  embeddingRequestCheck,
  type ChatCompletionRequest,
  type CompletionRequest,
  type EmbeddingRequest,
} from './schemas';
import { embedInputs } from '../core/embeddings';
import { MAX_STOP_LENGTH } from '../core/stop';
import { chatReplyOf, type ChatReply } from '../core/tool-calls';
import { requestRecords } from './records';

/** What the HTTP transport needs of this module (it declares the same shape as HttpRoutes). */
export interface OpenAiRoutes {
  /** Whether `path` is served here (everything under /v1). */
  owns(path: string): boolean;
  /** Answers one request; `body` is the whole request body ('' for GET). Never throws. */
  handle(request: http.IncomingMessage, response: http.ServerResponse, path: string, body: string): void;
  /** A request without the API key: 401 in OpenAI's shape. */
  refuseUnauthorized(response: http.ServerResponse): void;
  /** A request the transport refuses itself (its status, message and code), in OpenAI's shape. */
  refuse(response: http.ServerResponse, status: number, message: string, code: string): void;
}

type Usage = { prompt_tokens: number; completion_tokens: number; total_tokens: number; prompt_tokens_details?: { cached_tokens: number } };

/** `cachedTokens`: of the prompt tokens, those a loaded prompt cache held (chat only). */
function usageOf(output: GenerationOutput, cachedTokens?: number): Usage {
  return {
    prompt_tokens: output.promptTokens,
    completion_tokens: output.completionTokens,
    total_tokens: output.promptTokens + output.completionTokens,
    ...(cachedTokens === undefined ? {} : { prompt_tokens_details: { cached_tokens: cachedTokens } }),
  };
}

function newId(prefix: string): string {
  return `${prefix}-${randomBytes(12).toString('hex')}`;
}

function stopsOf(stop: string | string[] | null | undefined): string[] {
  if (stop === null || stop === undefined) return [];
  const stops = typeof stop === 'string' ? [stop] : stop;
  // Held-back output and matching work grow with a stop's length: bounded, and said so.
  const long = stops.findIndex((sequence) => sequence.length > MAX_STOP_LENGTH);
  if (long !== -1) {
    const param = typeof stop === 'string' ? 'stop' : `stop.${long}`;
    throw badRequest(`Invalid value for '${param}': a stop sequence may be at most ${MAX_STOP_LENGTH} characters long (this one has ${stops[long].length}).`, param, 'invalid_value');
  }
  return stops;
}

export function writeOpenAiError(response: http.ServerResponse, error: OpenAiError): void {
  writeJsonReply(response, error.status, error.toBody(), 'application/json');
}

function writeJson(response: http.ServerResponse, body: unknown): void {
  writeJsonReply(response, 200, body, 'application/json');
}

/** The body parsed and checked against the route's schema; a 400 naming the first bad member otherwise. */
function readBody<T>(body: string, check: TypeCheck<TSchema>): T {
  const read = readJsonBody<T>(body, check);
  if ('value' in read) return read.value;
  const problem = read.problem;
  switch (problem.kind) {
    case 'invalid_json':
      throw badRequest('The request body is not valid JSON.', null, 'invalid_json');
    case 'not_an_object':
      throw badRequest('The request body must be a JSON object.');
    case 'too_deep':
      throw badRequest(`Invalid value for '${problem.param}': nested deeper than ${problem.limit} levels of arrays and objects.`, problem.param, 'invalid_value');
    case 'invalid_value':
      throw badRequest(`Invalid value for '${problem.param ?? 'body'}': ${problem.message}.`, problem.param, 'invalid_value');
  }
}

/** An SSE response: one `data:` event per chunk, `data: [DONE]` at the end. */
class EventStream {
  constructor(private readonly response: http.ServerResponse) {
    response.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', 'x-accel-buffering': 'no' });
    response.flushHeaders();
  }

  send(event: unknown): void {
    if (!this.response.destroyed && !this.response.writableEnded) this.response.write(`data: ${JSON.stringify(event)}\n\n`);
  }

  /** Several events in one write (a runtime batch of tokens). */
  sendAll(events: readonly unknown[]): void {
    if (this.response.destroyed || this.response.writableEnded) return;
    let text = '';
    for (const event of events) text += `data: ${JSON.stringify(event)}\n\n`;
    this.response.write(text);
  }

  end(): void {
    if (this.response.destroyed || this.response.writableEnded) return;
    this.response.write('data: [DONE]\n\n');
    this.response.end();
  }
}

export class OpenAiApi implements OpenAiRoutes {
  /** `chatSettings`: each model's chat template and truncation settings (absent: guessed template, 'refuse'). */
  constructor(
    private readonly core: ServerCore,
    private readonly chatSettings: ChatSettingsSource = () => ({}),
  ) {}

  private view(loaded: LoadedModel): ChatModelView {
    return chatModelView(this.core, loaded, this.chatSettings(loaded));
  }

  owns(path: string): boolean {
    return path === '/v1' || path.startsWith('/v1/');
  }

  refuseUnauthorized(response: http.ServerResponse, path = '/v1'): void {
    requestRecords.start(this.core.requests, response, path);
    this.writeError(response, unauthorized());
  }

  refuse(response: http.ServerResponse, status: number, message: string, code: string, path = '/v1'): void {
    requestRecords.start(this.core.requests, response, path);
    this.writeError(response, new OpenAiError(status, 'invalid_request_error', message, null, code));
  }

  handle(request: http.IncomingMessage, response: http.ServerResponse, path: string, body: string): void {
    requestRecords.start(this.core.requests, response, path);
    try {
      this.route(request, response, path, body);
    } catch (error) {
      this.writeError(response, error);
    }
  }

  /** The error in OpenAI's shape, noted on the request's record. */
  private writeError(response: http.ServerResponse, error: unknown): void {
    requestRecords.noteError(response, error);
    writeOpenAiError(response, error instanceof OpenAiError ? error : toOpenAiError(error));
  }

  private route(request: http.IncomingMessage, response: http.ServerResponse, path: string, body: string): void {
    const method = request.method ?? 'GET';
    const expect = (allowed: string): void => {
      if (method !== allowed) throw new OpenAiError(405, 'invalid_request_error', `${method} is not allowed on ${path}; use ${allowed}.`, null, 'method_not_allowed');
    };
    if (path === '/v1/models') {
      expect('GET');
      this.answer(response, this.listed().then((models) => ({ object: 'list', data: models.map((listing) => this.describe(listing)) })));
      return;
    }
    const model = /^\/v1\/models\/(.+)$/.exec(path);
    if (model) {
      expect('GET');
      const name = decodeURIComponent(model[1]);
      this.answer(response, this.core.residency.listing().then(async (models) => {
        const found = models.find((listing) => listing.name === name || listing.aliases.includes(name));
        if (!found) throw modelNotFound(name, (await this.listed()).map((listing) => listing.name));
        return this.describe(found);
      }));
      return;
    }
    if (path === '/v1/chat/completions') {
      expect('POST');
      const request = readBody<ChatCompletionRequest>(body, chatCompletionRequestCheck);
      this.refuseWhileShuttingDown();
      this.withModel(response, request.model, (loaded) => this.chat(response, request, loaded));
      return;
    }
    if (path === '/v1/completions') {
      expect('POST');
      const request = readBody<CompletionRequest>(body, completionRequestCheck);
      this.refuseWhileShuttingDown();
      this.withModel(response, request.model, (loaded) => this.complete(response, request, loaded));
      return;
    }
    if (path === '/v1/embeddings') {
      expect('POST');
      const request = readBody<EmbeddingRequest>(body, embeddingRequestCheck);
      if ((request as Record<string, unknown>).dimensions !== undefined && (request as Record<string, unknown>).dimensions !== null) {
        throw badRequest("'dimensions' is not supported: an embedding has the model's hidden size.", 'dimensions', 'unsupported_parameter');
      }
      this.refuseWhileShuttingDown();
      this.withModel(response, request.model, (loaded) => this.embeddings(response, request, loaded));
      return;
    }
    throw notFound(`No route ${method} ${path}; served: GET /v1/models, POST /v1/chat/completions, POST /v1/completions, POST /v1/embeddings.`);
  }

  /**
   * What /v1/models lists: the catalog and rkllm_init's models. The emulated runtime's bundled
   * sim:NAME models are left out until loaded (several are test fixtures that fail on purpose);
   * they can still be named.
   */
  private async listed(): Promise<ModelListing[]> {
    return (await this.core.residency.listing()).filter((listing) => listing.source !== 'sim' || listing.loaded);
  }

  private describe(listing: ModelListing): Record<string, unknown> {
    const extra: Record<string, unknown> = { loaded: listing.loaded };
    if (listing.context_length !== undefined) extra.context_length = listing.context_length;
    if (listing.aliases.length > 0) extra.aliases = listing.aliases;
    return { id: listing.name, object: 'model', created: 0, owned_by: 'rkllm-serve', ...extra };
  }

  /** A JSON answer computed asynchronously, or its error in OpenAI's shape. */
  private answer(response: http.ServerResponse, body: Promise<unknown>): void {
    body.then(
      (value) => writeJson(response, value),
      (error: unknown) => this.writeError(response, error),
    );
  }

  /** The model a request names, loaded first when it is a catalog model that is not (lib/core/residency.ts). */
  private withModel(response: http.ServerResponse, name: string, use: (loaded: LoadedModel) => void): void {
    requestRecords.of(response)?.noteModel(name);
    const gone = new AbortController();
    const onClose = (): void => gone.abort();
    response.once('close', onClose);
    this.core.residency.acquire(name, gone.signal).finally(() => response.off('close', onClose)).then(
      (loaded) => {
        if (response.destroyed) return;
        try {
          this.refuseWhileShuttingDown();
          use(loaded);
        } catch (error) {
          this.writeError(response, error);
        }
      },
      (error: unknown) => {
        const names = error instanceof RkllmError && error.code === 'UNKNOWN_HANDLE' ? error.facts?.models : undefined;
        requestRecords.noteError(response, error);
        writeOpenAiError(response, Array.isArray(names) ? modelNotFound(name, names as string[]) : toOpenAiError(error));
      },
    );
  }

  private refuseWhileShuttingDown(): void {
    this.core.checkAccepting();
  }

  /** Mean-pooled, unit-length vectors of the last hidden layer (lib/core/embeddings.ts), as floats or base64 float32 LE. */
  private embeddings(response: http.ServerResponse, request: EmbeddingRequest, loaded: LoadedModel): void {
    const inputs = typeof request.input === 'string' ? [request.input] : request.input;
    const runs = embedInputs(this.core, loaded, inputs);
    response.once('close', () => {
      if (!response.writableFinished) runs.cancel();
    });
    const base64 = request.encoding_format === 'base64';
    this.answer(
      response,
      runs.done.then((embeddings) => {
        const promptTokens = embeddings.reduce((sum, embedding) => sum + embedding.promptTokens, 0);
        requestRecords.of(response)?.noteRun({ promptTokens, generatedTokens: 0 });
        return {
          object: 'list',
          data: embeddings.map((embedding, index) => ({
            object: 'embedding',
            index,
            embedding: base64 ? Buffer.from(new Float32Array(embedding.vector).buffer).toString('base64') : embedding.vector,
          })),
          model: request.model,
          usage: { prompt_tokens: promptTokens, total_tokens: promptTokens },
        };
      }),
    );
  }

  private chat(response: http.ServerResponse, request: ChatCompletionRequest, loaded: LoadedModel): void {
    const turn = splitMessages(request.messages, request.tools, request.tool_choice);
    const last = turn.history[turn.history.length - 1];
    if (!last || (last.role !== 'user' && last.role !== 'tool')) {
      throw badRequest('The last message (other than system ones) must be a user or tool message: the model answers it.', 'messages');
    }
    const maxTokens = request.max_completion_tokens ?? request.max_tokens ?? undefined;
    const view = this.view(loaded);
    const plan: ChatPlan = planChat(loaded, turn, samplingInfer(this.core, request, maxTokens), { view, maxTokens });
    const id = newId('chatcmpl');
    const created = Math.floor(Date.now() / 1000);
    const base = { id, created, model: loaded.handle, system_fingerprint: null };

    // With tools, the whole answer is needed to tell a tool call from text, so nothing streams early.
    const toolsActive = turn.toolsJson !== undefined;
    let events: EventStream | undefined;
    let reply: ChatReply | undefined;
    const spec: GenerationSpec = {
      prepare: () => plan.prepare(),
      // Remembered synchronously, so a request queued behind this one sees the conversation.
      onSettled: (output, error) => {
        if (output === undefined || output.cut) {
          plan.forget(error);
          return;
        }
        reply = chatReplyOf(output, toolsActive);
        plan.remember(reply.message, output.promptTokens);
      },
      stop: stopsOf(request.stop),
      maxTokens,
      runtimeTokenLimit: runtimeTokenLimit(this.core, view, maxTokens),
      contextLength: view.contextLength,
      truncation: view.settings.truncation ?? 'refuse',
      thinking: view.settings.thinking,
      contextFull: () => (loaded.model.getKvCacheSize()[0] ?? 0) >= view.contextLength,
      onText:
        request.stream && !toolsActive
          ? (deltas) => events?.sendAll(deltas.map((delta) => ({ ...base, object: 'chat.completion.chunk', choices: [{ index: 0, delta: { content: delta }, finish_reason: null }] })))
          : undefined,
    };
    const generation = startGeneration(this.core, loaded, spec);
    this.cancelOnDisconnect(response, generation);

    if (request.stream) {
      events = new EventStream(response);
      events.send({ ...base, object: 'chat.completion.chunk', choices: [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }] });
    }
    generation.done.then(
      (output) => {
        requestRecords.of(response)?.noteRun(generationFigures(generation, output));
        const { message, finishReason } = reply ?? chatReplyOf(output, toolsActive);
        const usage = usageOf(output, plan.cachedTokens(output.promptTokens));
        if (!events) {
          writeJson(response, { ...base, object: 'chat.completion', choices: [{ index: 0, message: { ...message, refusal: null }, finish_reason: finishReason, logprobs: null }], usage });
          return;
        }
        const delta: Record<string, unknown> = {};
        if (toolsActive && message.content) delta.content = message.content;
        if (message.tool_calls) delta.tool_calls = message.tool_calls.map((call, index) => ({ index, ...call }));
        if (Object.keys(delta).length > 0) events.send({ ...base, object: 'chat.completion.chunk', choices: [{ index: 0, delta, finish_reason: null }] });
        events.send({ ...base, object: 'chat.completion.chunk', choices: [{ index: 0, delta: {}, finish_reason: finishReason }] });
        if (request.stream_options?.include_usage) events.send({ ...base, object: 'chat.completion.chunk', choices: [], usage });
        events.end();
      },
      (error: unknown) => this.fail(response, events, error),
    );
  }

  private complete(response: http.ServerResponse, request: CompletionRequest, loaded: LoadedModel): void {
    const prompt = typeof request.prompt === 'string' ? request.prompt : request.prompt[0];
    const maxTokens = request.max_tokens ?? undefined;
    const view = this.view(loaded);
    const id = newId('cmpl');
    const base = { id, created: Math.floor(Date.now() / 1000), model: loaded.handle, system_fingerprint: null };
    let events: EventStream | undefined;
    const generation = startGeneration(this.core, loaded, {
      prepare: planCompletion(loaded, prompt, samplingInfer(this.core, request, maxTokens)),
      stop: stopsOf(request.stop),
      maxTokens,
      runtimeTokenLimit: runtimeTokenLimit(this.core, view, maxTokens),
      contextLength: view.contextLength,
      truncation: 'refuse',
      thinking: view.settings.thinking,
      onText: request.stream
        ? (deltas) => events?.sendAll(deltas.map((delta) => ({ ...base, object: 'text_completion', choices: [{ index: 0, text: delta, finish_reason: null, logprobs: null }] })))
        : undefined,
    });
    this.cancelOnDisconnect(response, generation);
    if (request.stream) events = new EventStream(response);
    generation.done.then(
      (output) => {
        requestRecords.of(response)?.noteRun(generationFigures(generation, output));
        const usage = usageOf(output);
        if (!events) {
          writeJson(response, { ...base, object: 'text_completion', choices: [{ index: 0, text: output.text, finish_reason: output.finishReason, logprobs: null }], usage });
          return;
        }
        events.send({ ...base, object: 'text_completion', choices: [{ index: 0, text: '', finish_reason: output.finishReason, logprobs: null }] });
        if (request.stream_options?.include_usage) events.send({ ...base, object: 'text_completion', choices: [], usage });
        events.end();
      },
      (error: unknown) => this.fail(response, events, error),
    );
  }

  /** Before the stream started: an error status. After: an error event, then the end of the stream. */
  private fail(response: http.ServerResponse, events: EventStream | undefined, error: unknown): void {
    requestRecords.noteError(response, error);
    const openAiError = toOpenAiError(error);
    if (!events) {
      writeOpenAiError(response, openAiError);
      return;
    }
    events.send(openAiError.toBody());
    events.end();
  }

  /** A client that goes away before its answer is complete cancels its run (queued or running). */
  private cancelOnDisconnect(response: http.ServerResponse, generation: Generation): void {
    response.once('close', () => {
      if (!response.writableFinished) generation.cancel();
    });
  }
}
