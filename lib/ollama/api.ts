// The Ollama API routes under /api: version, tags, show, ps, chat, generate, and the management
// routes answered with a clear refusal. The HTTP transport hands every /api request here (after
// its API key check and body limit); this module answers it on the engine's own catalog, models
// and schedulers (ServerCore), so an Ollama chat and an OpenAI or JSON-RPC run on one model wait
// in the same queue and share its KV cache bookkeeping (lib/core/conversation.ts).

import { createHash } from 'crypto';
import { promises as fs } from 'fs';
import type * as http from 'http';
import type { TypeCheck } from '@sinclair/typebox/compiler';
import type { TSchema } from '@sinclair/typebox';
import type { CatalogEntry, ModelListing } from '../core/catalog';
import { chatModelView, type ChatModelView, type ChatSettingsSource } from '../core/chat-model';
import { guessChatTemplate, resolveChatTemplate } from '../core/chat-templates';
import { planChat, planRaw, splitMessages, type ChatMessage } from '../core/conversation';
import type { ServerCore } from '../core/core';
import { generationFigures, runtimeTokenLimit, startGeneration, type Generation, type GenerationOutput, type GenerationSpec } from '../core/generation';
import { KEEP_FOREVER, keepAliveMs } from '../core/model-settings';
import type { LoadedModel } from '../core/models';
import { MAX_STOP_LENGTH } from '../core/stop';
import { parseToolCalls } from '../core/tool-calls';
import { RkllmError } from '../errors';
import type { SamplingParam } from '../native/binding';
import type { PartialInferParam } from '../runtime/model';
import { readJsonBody, writeJsonReply } from '../rpc/json-body';
import { embedInputs, type Embedding } from '../core/embeddings';
import { OllamaError, badRequest, modelNotFound, toOllamaError } from './errors';
import {
  chatRequestCheck,
  embedRequestCheck,
  embeddingsRequestCheck,
  generateRequestCheck,
  showRequestCheck,
  type ChatRequest,
  type GenerateRequest, type OllamaMessage, type OllamaOptions, type ShowRequest, type EmbedRequest, type EmbeddingsRequest } from './schemas';
import { ThinkingSplitter, splitThinking, type AnswerPart } from './thinking';
import { requestRecords } from './records';

/**
 * The Ollama API version /api/version reports: the one whose routes and fields this front end
 * follows. Clients gate features on it (Open WebUI, ollama-js), so it is Ollama's, not ours.
 */
export const OLLAMA_API_VERSION = '0.6.0';

/** ps's expires_at for a model that is never unloaded (Ollama shows a date centuries away too). */
const FOREVER = '2318-01-01T00:00:00Z';

/** Ollama's default tag. */
const LATEST = ':latest';

const MANAGEMENT_ROUTES = new Set(['/api/pull', '/api/push', '/api/create', '/api/copy', '/api/delete', '/api/blobs']);

/** What the HTTP transport needs of this module (the shape of its HttpRoutes). */
export interface OllamaRoutes {
  owns(path: string): boolean;
  handle(request: http.IncomingMessage, response: http.ServerResponse, path: string, body: string): void;
  refuseUnauthorized(response: http.ServerResponse): void;
  refuse(response: http.ServerResponse, status: number, message: string, code: string): void;
}

const JSON_TYPE = 'application/json; charset=utf-8';

function writeError(response: http.ServerResponse, error: OllamaError): void {
  writeJsonReply(response, error.status, error.toBody(), JSON_TYPE);
}

function writeJson(response: http.ServerResponse, body: unknown): void {
  writeJsonReply(response, 200, body, JSON_TYPE);
}

/** The body parsed and checked against the route's schema (an empty one is {}); a 400 naming the first bad member otherwise. */
function readBody<T>(body: string, check: TypeCheck<TSchema>): T {
  const read = readJsonBody<T>(body, check, '{}');
  if ('value' in read) return read.value;
  const problem = read.problem;
  switch (problem.kind) {
    case 'invalid_json':
      throw badRequest('the request body is not valid JSON');
    case 'not_an_object':
      throw badRequest('the request body must be a JSON object');
    case 'too_deep':
      throw badRequest(`invalid value for '${problem.param}': nested deeper than ${problem.limit} levels of arrays and objects`);
    case 'invalid_value':
      throw badRequest(`invalid value for '${problem.param ?? 'body'}': ${problem.message}`);
  }
}

/** Nanoseconds, as Ollama's *_duration fields count. */
function ns(ms: number): number {
  return Math.round(ms * 1e6);
}

/** One NDJSON response: a JSON object per line (application/x-ndjson, as Ollama streams). */
class LineStream {
  constructor(private readonly response: http.ServerResponse) {
    response.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-cache', 'x-accel-buffering': 'no' });
    response.flushHeaders();
  }

  sendAll(lines: readonly unknown[]): void {
    if (this.response.destroyed || this.response.writableEnded || lines.length === 0) return;
    this.response.write(lines.map((line) => `${JSON.stringify(line)}\n`).join(''));
  }

  end(last: unknown): void {
    if (this.response.destroyed || this.response.writableEnded) return;
    this.response.end(`${JSON.stringify(last)}\n`);
  }
}

/** What the name says of a model, as Ollama's `details` lists it (RKLLM files carry no metadata we read). */
function detailsOf(name: string): Record<string, unknown> {
  const family = guessChatTemplate(name) ?? 'unknown';
  const size = /(?:^|[^0-9.])([0-9]+(?:\.[0-9]+)?)[bB](?![a-zA-Z])/.exec(name);
  const quantization = /w[0-9]+a[0-9]+(?:_g[0-9]+)?/i.exec(name);
  return {
    parent_model: '',
    format: 'rkllm',
    family,
    families: [family],
    parameter_size: size ? `${size[1]}B` : '',
    quantization_level: quantization ? quantization[0].toUpperCase() : '',
  };
}

/** Ollama's options as a 1.3 per-run RKLLMInferParam; sampling the 1.2 ABI fixes at rkllm_init. */
function inferOf(core: ServerCore, options: OllamaOptions, maxTokens: number | undefined): PartialInferParam {
  if (core.runtime.info.abi === '1.2') return {};
  const infer: PartialInferParam = {};
  if (maxTokens !== undefined) infer.max_new_tokens = maxTokens;
  const { temperature, top_k, top_p, repeat_penalty, presence_penalty, frequency_penalty } = options;
  if ([temperature, top_k, top_p, repeat_penalty, presence_penalty, frequency_penalty].some((value) => value !== undefined)) {
    // sampling_params replaces every sampling setting for the run: the unset ones come from the defaults.
    const defaults = core.defaultParam();
    const sampling: SamplingParam = {
      top_k: top_k ?? defaults.top_k,
      top_p: top_p ?? defaults.top_p,
      temperature: temperature ?? defaults.temperature,
      repeat_penalty: repeat_penalty ?? defaults.repeat_penalty,
      frequency_penalty: frequency_penalty ?? defaults.frequency_penalty,
      presence_penalty: presence_penalty ?? defaults.presence_penalty,
      mirostat: defaults.mirostat,
      mirostat_tau: defaults.mirostat_tau,
      mirostat_eta: defaults.mirostat_eta,
    };
    infer.sampling_params = sampling;
  }
  return infer;
}

function stopsOf(options: OllamaOptions): string[] {
  const stops = options.stop ?? [];
  const long = stops.findIndex((sequence) => sequence.length > MAX_STOP_LENGTH);
  if (long !== -1) throw badRequest(`invalid value for 'options.stop.${long}': a stop sequence may be at most ${MAX_STOP_LENGTH} characters long`);
  return stops;
}

/** num_predict: a positive count bounds the answer; -1 (no limit) and -2 (fill the context) leave the model's own limit. */
function maxTokensOf(options: OllamaOptions): number | undefined {
  return options.num_predict !== undefined && options.num_predict > 0 ? options.num_predict : undefined;
}

/** What Ollama knows it cannot be asked here: refused with a sentence, not ignored (the answer would be wrong). */
function refuseUnsupported(request: { format?: unknown; images?: string[] | null; suffix?: string; template?: string }, messages: readonly OllamaMessage[] = []): void {
  if (request.format !== undefined && request.format !== null && request.format !== '') {
    throw badRequest("'format' (JSON mode and schemas) is not supported: RKLLM has no constrained decoding; ask for JSON in the prompt and parse the answer");
  }
  const imageAt = messages.findIndex((message) => (message.images ?? []).length > 0);
  if ((request.images ?? []).length > 0 || imageAt !== -1) {
    throw badRequest(`'${imageAt !== -1 ? `messages.${imageAt}.images` : 'images'}' is not supported: this server has no multimodal input yet`);
  }
  if (request.suffix !== undefined && request.suffix !== '') throw badRequest("'suffix' (fill-in-the-middle) is not supported: the RKLLM runtime cannot complete between a prefix and a suffix");
  if (request.template !== undefined && request.template !== '') {
    throw badRequest("'template' (a Go template) is not supported: set the model's chat_template setting, or send the whole prompt with raw: true");
  }
}

/** Ollama's messages in the shape the conversation planner reads (tool arguments as JSON text). */
function chatMessagesOf(messages: readonly OllamaMessage[]): ChatMessage[] {
  return messages.map((message) => ({
    role: message.role,
    content: message.content ?? '',
    tool_calls: message.tool_calls?.map((call) => ({ function: { name: call.function.name, arguments: JSON.stringify(call.function.arguments ?? {}) } })),
  }));
}

interface Timing {
  started: number;
  loadMs: number;
}

/**
 * The counts and durations of Ollama's last chunk, from the runtime's perf. As Ollama's own,
 * prompt_eval_count leaves out the prompt tokens a cache held (`cachedTokens`: a loaded prompt cache's).
 */
function statsOf(output: GenerationOutput, timing: Timing, cachedTokens = 0): Record<string, unknown> {
  return {
    done_reason: output.finishReason,
    total_duration: ns(Date.now() - timing.started),
    load_duration: ns(timing.loadMs),
    prompt_eval_count: output.promptTokens - cachedTokens,
    prompt_eval_duration: ns(output.prefillMs),
    eval_count: output.completionTokens,
    eval_duration: ns(output.generateMs),
  };
}

export class OllamaApi implements OllamaRoutes {
  constructor(
    private readonly core: ServerCore,
    private readonly chatSettings: ChatSettingsSource = () => ({}),
  ) {}

  owns(path: string): boolean {
    return path === '/api' || path.startsWith('/api/');
  }

  refuseUnauthorized(response: http.ServerResponse, path = '/api'): void {
    requestRecords.start(this.core.requests, response, path);
    this.writeError(response, new OllamaError(401, 'missing or incorrect API key: send it as "Authorization: Bearer <key>"'));
  }

  refuse(response: http.ServerResponse, status: number, message: string, code = `http_${status}`, path = '/api'): void {
    requestRecords.start(this.core.requests, response, path).noteError(new Error(message), code);
    this.writeError(response, new OllamaError(status, message));
  }

  handle(request: http.IncomingMessage, response: http.ServerResponse, path: string, body: string): void {
    requestRecords.start(this.core.requests, response, path);
    try {
      this.route(request, response, path, body);
    } catch (error) {
      this.writeError(response, error);
    }
  }

  /** The error in Ollama's shape, noted on the request's record. */
  private writeError(response: http.ServerResponse, error: unknown): void {
    requestRecords.noteError(response, error);
    writeError(response, toOllamaError(error));
  }

  private route(request: http.IncomingMessage, response: http.ServerResponse, path: string, body: string): void {
    const method = request.method ?? 'GET';
    const expect = (...allowed: string[]): void => {
      if (!allowed.includes(method)) throw new OllamaError(405, `${method} is not allowed on ${path}; use ${allowed.join(' or ')}`);
    };
    switch (path) {
      case '/api/version':
        expect('GET', 'HEAD');
        writeJson(response, { version: OLLAMA_API_VERSION });
        return;
      case '/api/tags':
        expect('GET', 'HEAD');
        this.answer(response, this.tags());
        return;
      case '/api/ps':
        expect('GET', 'HEAD');
        this.answer(response, this.ps());
        return;
      case '/api/show':
        expect('POST');
        this.answer(response, this.show(readBody<ShowRequest>(body, showRequestCheck)));
        return;
      case '/api/chat': {
        expect('POST');
        const chat = readBody<ChatRequest>(body, chatRequestCheck);
        refuseUnsupported({ format: chat.format }, chat.messages);
        const keepAlive = this.keepAliveOf(chat.keep_alive);
        this.core.checkAccepting();
        this.withModel(response, chat.model, keepAlive, (loaded, timing) => this.chat(response, chat, loaded, timing, keepAlive));
        return;
      }
      case '/api/generate': {
        expect('POST');
        const generate = readBody<GenerateRequest>(body, generateRequestCheck);
        refuseUnsupported(generate);
        const keepAlive = this.keepAliveOf(generate.keep_alive);
        this.core.checkAccepting();
        this.withModel(response, generate.model, keepAlive, (loaded, timing) => this.generate(response, generate, loaded, timing, keepAlive));
        return;
      }
      case '/api/embed': {
        expect('POST');
        const request = readBody<EmbedRequest>(body, embedRequestCheck);
        const inputs = typeof request.input === 'string' ? [request.input] : request.input;
        const empty = inputs.findIndex((text) => text === '');
        if (empty !== -1) throw badRequest(`invalid value for '${typeof request.input === 'string' ? 'input' : `input.${empty}`}': an empty text has no embedding`);
        if (request.dimensions !== undefined) throw badRequest("'dimensions' is not supported: the embedding has the model's own size");
        const keepAlive = this.keepAliveOf(request.keep_alive);
        this.core.checkAccepting();
        this.withModel(response, request.model, keepAlive, (loaded, timing) =>
          this.embedAll(response, loaded, inputs, keepAlive, (embeddings) => ({
            model: request.model,
            embeddings: embeddings.map((embedding) => embedding.vector),
            total_duration: ns(Date.now() - timing.started),
            load_duration: ns(timing.loadMs),
            prompt_eval_count: embeddings.reduce((sum, embedding) => sum + embedding.promptTokens, 0),
          })),
        );
        return;
      }
      case '/api/embeddings': {
        expect('POST');
        const request = readBody<EmbeddingsRequest>(body, embeddingsRequestCheck);
        if (request.prompt === '') throw badRequest("invalid value for 'prompt': an empty text has no embedding");
        const keepAlive = this.keepAliveOf(request.keep_alive);
        this.core.checkAccepting();
        this.withModel(response, request.model, keepAlive, (loaded) => this.embedAll(response, loaded, [request.prompt], keepAlive, ([only]) => ({ embedding: only.vector })));
        return;
      }
      default:
        break;
    }
    if (MANAGEMENT_ROUTES.has(path) || path.startsWith('/api/blobs/')) {
      throw new OllamaError(
        501,
        `${path} is not supported: rkllm-serve does not pull, push, create, copy or delete models; put converted .rkllm files in a models directory (--models-dir) and they are listed by /api/tags`,
      );
    }
    throw new OllamaError(404, `no route ${method} ${path}; served: GET /api/version, GET /api/tags, GET /api/ps, POST /api/show, POST /api/chat, POST /api/generate, POST /api/embed, POST /api/embeddings`);
  }

  /** keep_alive in ms, checked before anything runs; undefined: the model's own setting. */
  private keepAliveOf(value: number | string | undefined): number | undefined {
    if (value === undefined) return undefined;
    try {
      return keepAliveMs(value, KEEP_FOREVER);
    } catch (error) {
      throw error instanceof RkllmError ? badRequest(`invalid value for 'keep_alive': ${error.reason ?? error.message}`) : error;
    }
  }

  private answer(response: http.ServerResponse, body: Promise<unknown>): void {
    body.then(
      (value) => writeJson(response, value),
      (error: unknown) => this.writeError(response, error),
    );
  }

  /** The catalog as /api/tags lists it; the emulator's bundled sim: models only once loaded (several fail on purpose). */
  private async listed(): Promise<{ listing: ModelListing; entry: CatalogEntry | undefined }[]> {
    const entries = await this.core.catalog.entries();
    return (await this.core.residency.listing())
      .filter((listing) => listing.source !== 'sim' || listing.loaded)
      .map((listing) => ({ listing, entry: entries.find((entry) => entry.name === listing.name) }));
  }

  /** A model's size and modified time: its file's, or 0 and the server's start for sim: and rkllm_init models. */
  private async fileFacts(entry: CatalogEntry | undefined): Promise<{ size: number; modified: Date }> {
    if (entry && entry.source !== 'sim') {
      try {
        const stat = await fs.stat(entry.modelPath);
        return { size: stat.size, modified: stat.mtime };
      } catch {
        // A file gone since the scan is listed until the next scan drops it.
      }
    }
    return { size: 0, modified: new Date(Date.now() - process.uptime() * 1000) };
  }

  private async describe(listing: ModelListing, entry: CatalogEntry | undefined): Promise<Record<string, unknown>> {
    const { size, modified } = await this.fileFacts(entry);
    // Not the file's content hash (hashing gigabytes per listing is too slow): stable while the file is unchanged.
    const digest = createHash('sha256').update(`${listing.name}\0${size}\0${modified.getTime()}`).digest('hex');
    return { name: listing.name, model: listing.name, modified_at: modified.toISOString(), size, digest, details: detailsOf(listing.name) };
  }

  private async tags(): Promise<unknown> {
    const models = await Promise.all((await this.listed()).map(({ listing, entry }) => this.describe(listing, entry)));
    return { models };
  }

  private async ps(): Promise<unknown> {
    const loaded = (await this.listed()).filter(({ listing }) => listing.loaded);
    const models = await Promise.all(
      loaded.map(async ({ listing, entry }) => {
        const keepAlive = listing.keep_alive_ms;
        let expires = FOREVER;
        if (keepAlive !== undefined && keepAlive !== KEEP_FOREVER) expires = new Date((listing.idle_since ?? Date.now()) + keepAlive).toISOString();
        // The NPU works from system memory: nothing is held in a separate VRAM.
        return { ...(await this.describe(listing, entry)), expires_at: expires, size_vram: 0, context_length: listing.context_length ?? this.core.defaultParam().max_context_len };
      }),
    );
    return { models };
  }

  private async show(request: ShowRequest): Promise<unknown> {
    const name = request.model ?? request.name;
    if (name === undefined) throw badRequest("'model' is required");
    const known = await this.nameOf(name);
    const listed = await this.core.residency.listing();
    const listing = listed.find((model) => model.name === known || model.aliases.includes(known));
    if (!listing) throw modelNotFound(name, (await this.listed()).map((model) => model.listing.name));
    const entry = (await this.core.catalog.entries()).find((candidate) => candidate.name === listing.name);
    const defaults = this.core.defaultParam();
    const settings: Partial<CatalogEntry['settings']> = entry?.settings ?? {};
    const template = resolveChatTemplate(settings.chat_template, listing.name);
    const capabilities = ['completion'];
    // Tool calls are read in Qwen's format (lib/core/tool-calls.ts), the one ChatML models write.
    if (template === undefined || template.name === 'chatml' || template.name === 'custom') capabilities.push('tools');
    if (template?.name === 'deepseek-r1' || settings.thinking === true || /qwen3/i.test(listing.name)) capabilities.push('thinking');
    const contextLength = listing.context_length ?? defaults.max_context_len;
    const family = guessChatTemplate(listing.name) ?? 'unknown';
    const parameters = [
      `temperature ${defaults.temperature}`,
      `top_k ${defaults.top_k}`,
      `top_p ${defaults.top_p}`,
      `repeat_penalty ${defaults.repeat_penalty}`,
      `num_ctx ${contextLength}`,
    ].join('\n');
    const { modified } = await this.fileFacts(entry);
    return {
      license: '',
      modelfile: '',
      parameters,
      // RKLLM's three strings rather than a Go template: what the runtime puts around each turn.
      template: template ? `${template.systemPrompt('{{ .System }}')}${template.prefix}{{ .Prompt }}${template.postfix}` : '',
      details: detailsOf(listing.name),
      model_info: { 'general.architecture': family, [`${family}.context_length`]: contextLength },
      capabilities,
      modified_at: modified.toISOString(),
    };
  }

  /**
   * The name a request means: Ollama clients add the default tag ':latest' to a bare name
   * ("qwen2.5" becomes "qwen2.5:latest"), and catalog names have no tags; a name the catalog
   * has as written wins.
   */
  private async nameOf(requested: string): Promise<string> {
    if (!requested.endsWith(LATEST)) return requested;
    const listed = await this.core.residency.listing();
    const exact = listed.some((model) => model.name === requested || model.aliases.includes(requested));
    return exact ? requested : requested.slice(0, -LATEST.length);
  }

  private view(loaded: LoadedModel): ChatModelView {
    return chatModelView(this.core, loaded, this.chatSettings(loaded));
  }

  /** The model a request names, loaded first when it is a catalog model that is not. */
  private withModel(response: http.ServerResponse, name: string, keepAlive: number | undefined, use: (loaded: LoadedModel, timing: Timing) => void): void {
    const timing: Timing = { started: Date.now(), loadMs: 0 };
    requestRecords.of(response)?.noteModel(name);
    const gone = new AbortController();
    const onClose = (): void => gone.abort();
    response.once('close', onClose);
    this.nameOf(name).then((known) => this.core.residency.acquire(known, gone.signal)).finally(() => response.off('close', onClose)).then(
      (loaded) => {
        timing.loadMs = Date.now() - timing.started;
        if (response.destroyed) return;
        try {
          this.core.checkAccepting();
          use(loaded, timing);
        } catch (error) {
          this.core.residency.setKeepAlive(loaded, keepAlive);
          this.writeError(response, error);
        }
      },
      (error: unknown) => {
        const names = error instanceof RkllmError && error.code === 'UNKNOWN_HANDLE' ? error.facts?.models : undefined;
        requestRecords.noteError(response, error);
        writeError(response, Array.isArray(names) ? modelNotFound(name, names as string[]) : toOllamaError(error));
      },
    );
  }

  /** An empty request loads the model (or, with keep_alive 0, unloads it), as Ollama's does. */
  private loadOnly(response: http.ServerResponse, loaded: LoadedModel, keepAlive: number | undefined, shape: Record<string, unknown>): void {
    this.core.residency.setKeepAlive(loaded, keepAlive);
    writeJson(response, { created_at: new Date().toISOString(), ...shape, done: true, done_reason: keepAlive === 0 ? 'unload' : 'load' });
  }

  private chat(response: http.ServerResponse, request: ChatRequest, loaded: LoadedModel, timing: Timing, keepAlive: number | undefined): void {
    const messages = request.messages ?? [];
    if (messages.length === 0) {
      this.loadOnly(response, loaded, keepAlive, { model: request.model, message: { role: 'assistant', content: '' } });
      return;
    }
    const turn = splitMessages(chatMessagesOf(messages), request.tools, undefined);
    const last = turn.history[turn.history.length - 1];
    if (!last || (last.role !== 'user' && last.role !== 'tool')) throw badRequest('the last message (other than system ones) must be a user or tool message: the model answers it');
    const options = request.options ?? {};
    const maxTokens = maxTokensOf(options);
    const view = this.view(loaded);
    // Ollama drops the oldest messages of a chat its context cannot hold: so does this front end, unless the model says 'refuse'.
    const truncation = view.settings.truncation ?? 'drop_oldest';
    const chatView: ChatModelView = { ...view, settings: { ...view.settings, truncation } };
    const plan = planChat(loaded, turn, inferOf(this.core, options, maxTokens), { view: chatView, maxTokens });
    const think = request.think === undefined ? view.settings.thinking === true : request.think !== false;
    const toolsActive = turn.toolsJson !== undefined;
    const stream = request.stream !== false;
    const created = (): string => new Date().toISOString();
    const splitter = new ThinkingSplitter(think);
    let lines: LineStream | undefined;
    let reply: { content: string; thinking: string | undefined; toolCalls: { function: { name: string; arguments: unknown } }[] } | undefined;

    const replyOf = (output: GenerationOutput) => {
      const { thinking, content } = think ? splitThinking(output.text) : { thinking: undefined, content: output.text };
      if (!toolsActive) return { content, thinking, toolCalls: [] };
      const parsed = parseToolCalls(content);
      const toolCalls = parsed.toolCalls.map((call) => ({ function: { name: call.function.name, arguments: parseArguments(call.function.arguments) } }));
      return { content: parsed.content ?? '', thinking, toolCalls };
    };
    const spec: GenerationSpec = {
      prepare: () => plan.prepare(),
      onSettled: (output, error) => {
        if (output === undefined || output.cut) {
          plan.forget(error);
          return;
        }
        reply = replyOf(output);
        // Remembered as the planner will see it again: the tool calls as Ollama clients send them back.
        const calls = reply.toolCalls.map((call) => ({ function: { name: call.function.name, arguments: JSON.stringify(call.function.arguments) } }));
        plan.remember({ role: 'assistant', content: reply.content, tool_calls: calls.length > 0 ? calls : undefined }, output.promptTokens);
      },
      stop: stopsOf(options),
      maxTokens,
      runtimeTokenLimit: runtimeTokenLimit(this.core, view, maxTokens),
      contextLength: view.contextLength,
      truncation,
      thinking: think,
      contextFull: () => (loaded.model.getKvCacheSize()[0] ?? 0) >= view.contextLength,
      onText:
        stream && !toolsActive
          ? (deltas) =>
              lines?.sendAll(
                deltas.flatMap((delta) => splitter.push(delta)).map((part) => ({ model: request.model, created_at: created(), message: messagePart(part), done: false })),
              )
          : undefined,
    };
    const generation = startGeneration(this.core, loaded, spec);
    this.cancelOnDisconnect(response, generation);
    if (stream) lines = new LineStream(response);
    generation.done.then(
      (output) => {
        this.core.residency.setKeepAlive(loaded, keepAlive);
        requestRecords.of(response)?.noteRun(generationFigures(generation, output));
        const { content, thinking, toolCalls } = reply ?? replyOf(output);
        const message: Record<string, unknown> = { role: 'assistant', content };
        if (thinking !== undefined) message.thinking = thinking;
        if (toolCalls.length > 0) message.tool_calls = toolCalls;
        const stats = statsOf(output, timing, plan.cachedTokens(output.promptTokens));
        if (!lines) {
          writeJson(response, { model: request.model, created_at: created(), message, done: true, ...stats });
          return;
        }
        const rest = toolsActive ? [{ model: request.model, created_at: created(), message, done: false }] : splitter.flush().map((part) => ({ model: request.model, created_at: created(), message: messagePart(part), done: false }));
        lines.sendAll(rest);
        lines.end({ model: request.model, created_at: created(), message: { role: 'assistant', content: '' }, done: true, ...stats });
      },
      (error: unknown) => {
        this.core.residency.setKeepAlive(loaded, keepAlive);
        this.fail(response, lines, error);
      },
    );
  }

  private generate(response: http.ServerResponse, request: GenerateRequest, loaded: LoadedModel, timing: Timing, keepAlive: number | undefined): void {
    const prompt = request.prompt ?? '';
    if (prompt === '') {
      this.loadOnly(response, loaded, keepAlive, { model: request.model, response: '' });
      return;
    }
    const options = request.options ?? {};
    const maxTokens = maxTokensOf(options);
    const view = this.view(loaded);
    const infer = inferOf(this.core, options, maxTokens);
    const think = request.think === undefined ? view.settings.thinking === true : request.think !== false;
    const truncation = view.settings.truncation ?? 'drop_oldest';
    let prepare: GenerationSpec['prepare'];
    let forget = (): void => undefined;
    if (request.raw === true) prepare = planRaw(loaded, prompt, infer);
    else {
      // A prompt and its system text as a one-turn chat in the model's template, on a fresh cache.
      const turn = splitMessages([...(request.system !== undefined ? [{ role: 'system' as const, content: request.system }] : []), { role: 'user', content: prompt }], undefined, undefined);
      // Nothing continues a one-turn generate: no prompt cache is saved for it.
      const plan = planChat(loaded, turn, infer, { view: { ...view, promptCaches: undefined, settings: { ...view.settings, truncation } }, maxTokens });
      prepare = () => plan.prepare();
      forget = () => plan.forget();
    }
    const stream = request.stream !== false;
    const created = (): string => new Date().toISOString();
    const splitter = new ThinkingSplitter(think);
    let lines: LineStream | undefined;
    const field = (part: { content?: string; thinking?: string }) => (part.thinking !== undefined ? { response: '', thinking: part.thinking } : { response: part.content ?? '' });
    const generation = startGeneration(this.core, loaded, {
      prepare,
      // /api/generate is one turn: its answer is not a conversation a later chat continues.
      onSettled: () => forget(),
      stop: stopsOf(options),
      maxTokens,
      runtimeTokenLimit: runtimeTokenLimit(this.core, view, maxTokens),
      contextLength: view.contextLength,
      truncation,
      thinking: think,
      contextFull: () => (loaded.model.getKvCacheSize()[0] ?? 0) >= view.contextLength,
      onText: stream
        ? (deltas) => lines?.sendAll(deltas.flatMap((delta) => splitter.push(delta)).map((part) => ({ model: request.model, created_at: created(), ...field(part), done: false })))
        : undefined,
    });
    this.cancelOnDisconnect(response, generation);
    if (stream) lines = new LineStream(response);
    generation.done.then(
      (output) => {
        this.core.residency.setKeepAlive(loaded, keepAlive);
        requestRecords.of(response)?.noteRun(generationFigures(generation, output));
        const stats = statsOf(output, timing);
        if (!lines) {
          const { thinking, content } = think ? splitThinking(output.text) : { thinking: undefined, content: output.text };
          writeJson(response, { model: request.model, created_at: created(), response: content, ...(thinking !== undefined ? { thinking } : {}), done: true, ...stats });
          return;
        }
        lines.sendAll(splitter.flush().map((part) => ({ model: request.model, created_at: created(), ...field(part), done: false })));
        lines.end({ model: request.model, created_at: created(), response: '', done: true, ...stats });
      },
      (error: unknown) => {
        this.core.residency.setKeepAlive(loaded, keepAlive);
        this.fail(response, lines, error);
      },
    );
  }

  /** The inputs' embeddings (lib/core/embeddings.ts), then one answer. */
  private embedAll(response: http.ServerResponse, loaded: LoadedModel, inputs: readonly string[], keepAlive: number | undefined, answer: (embeddings: Embedding[]) => unknown): void {
    const runs = embedInputs(this.core, loaded, inputs);
    response.once('close', () => {
      if (!response.writableFinished) runs.cancel();
    });
    runs.done.then(
      (embeddings) => {
        this.core.residency.setKeepAlive(loaded, keepAlive);
        requestRecords.of(response)?.noteRun({ promptTokens: embeddings.reduce((sum, embedding) => sum + embedding.promptTokens, 0), generatedTokens: 0 });
        if (!response.destroyed) writeJson(response, answer(embeddings));
      },
      (error: unknown) => {
        this.core.residency.setKeepAlive(loaded, keepAlive);
        if (!response.destroyed) this.writeError(response, error);
      },
    );
  }

  /** Before the stream started: an error status. After: an error line (as Ollama sends), then the end. */
  private fail(response: http.ServerResponse, lines: LineStream | undefined, error: unknown): void {
    requestRecords.noteError(response, error);
    const ollamaError = toOllamaError(error);
    if (!lines) writeError(response, ollamaError);
    else lines.end(ollamaError.toBody());
  }

  private cancelOnDisconnect(response: http.ServerResponse, generation: Generation): void {
    response.once('close', () => {
      if (!response.writableFinished) generation.cancel();
    });
  }
}

/** A streamed chat chunk's message: Ollama always sends content, '' beside thinking. */
function messagePart(part: AnswerPart): Record<string, unknown> {
  return part.thinking !== undefined ? { role: 'assistant', content: '', thinking: part.thinking } : { role: 'assistant', content: part.content ?? '' };
}

/** A tool call's arguments as the object Ollama sends; text that is not a JSON object is kept under `value`. */
function parseArguments(text: string): unknown {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? value : { value };
  } catch {
    return { value: text };
  }
}
