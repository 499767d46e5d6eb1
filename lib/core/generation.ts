// One chat front-end request (OpenAI, Ollama, JSON-RPC's rkllm_chat) as a run on the core: the
// same queue, limits and cancellation as a JSON-RPC rkllm_run. Output is streamed through `stop`
// matching and a token budget; when either ends the answer early, the job finishes early there
// (its native run is stopped).

import type { ChatModelView } from './chat-model';
import type { ServerCore } from './core';
import type { Job, JobOutcome, RequestId } from './job';
import type { LoadedModel } from './models';
import type { Session } from './sessions';
import type { Stream } from './stream';
import type { RKLLMInput, SamplingParam } from '../native/binding';
import type { PartialInferParam } from '../runtime/model';
import type { RunChunk } from '../runtime/run';
import { contextLengthExceeded, isContextOverflow } from './context-budget';
import type { RunFigures } from './request-records';
import { StopMatcher } from './stop';

export type FinishReason = 'stop' | 'length';

export interface GenerationOutput {
  text: string;
  finishReason: FinishReason;
  /** perf.prefill_tokens; 0 when the answer was cut early (the runtime reports perf only at the end). */
  promptTokens: number;
  /** Tokens the runtime delivered for this answer (WAITING ones included). */
  completionTokens: number;
  /** True when stop or the token budget ended the answer: the cache holds more than the text. */
  cut: boolean;
  /** perf.prefill_time_ms and perf.generate_time_ms; 0 when the answer was cut early. */
  prefillMs: number;
  generateMs: number;
}

export interface GenerationSpec {
  prepare(): Promise<{ input: RKLLMInput; infer: PartialInferParam }>;
  stop: string[];
  /** Enforced here as well as passed to the runtime: the 1.2 ABI has no per-run max_new_tokens. */
  maxTokens: number | undefined;
  /** The max_new_tokens the runtime applies to this run (<= 0: none): an answer that long was cut, not ended. */
  runtimeTokenLimit: number;
  /** max_context_len of the model, for the error when the runtime refuses a prompt too long for it. */
  contextLength: number;
  truncation: 'refuse' | 'drop_oldest';
  /** The model's `thinking` setting: every run asks it to think first (RKLLMInput.enable_thinking). */
  thinking?: boolean;
  /** After a run that ended by itself: whether the KV cache is full (the runtime stopped at the context). */
  contextFull?(): boolean;
  /** Text as it can be released (stop sequences held back), one delta per token of a runtime batch; not called after the end. */
  onText?(deltas: readonly string[]): void;
  /**
   * Called as the job settles, before the next job on the model can start: the place to record
   * what the run left in the KV cache (`done` resolves a few microtasks later).
   */
  onSettled?(output: GenerationOutput | undefined, error?: unknown): void;
  /**
   * A JSON-RPC client's request (rkllm_chat): its id and the session that owns it, so its
   * connection's close and `cancel` by that id end it; with `stream`, its tokens (up to where
   * the answer ends) go to a stream pushed to that session.
   */
  client?: { requestId: RequestId; session: Session; stream: boolean };
}

export interface Generation {
  readonly done: Promise<GenerationOutput>;
  /** The job on the model's queue (its token times go into the request's record). */
  readonly job: Job;
  /** Ends the request (the client went away); the run is cancelled. */
  cancel(): void;
  /** The stream of a `client` request with `stream`. */
  readonly stream: Stream | undefined;
}

const NO_PERF = { prefill_time_ms: 0, prefill_tokens: 0, generate_time_ms: 0, generate_tokens: 0, memory_usage_mb: 0 };

/** The max_new_tokens the runtime applies: 1.3 takes the request's per run; otherwise the model's own. */
export function runtimeTokenLimit(core: ServerCore, view: ChatModelView, maxTokens: number | undefined): number {
  return maxTokens !== undefined && core.runtime.info.abi === '1.3' ? maxTokens : view.maxNewTokens;
}

/** The sampling members a request may set (OpenAI's four; rkllm_chat adds top_k and repeat_penalty). */
export interface SamplingRequest {
  temperature?: number | null;
  top_p?: number | null;
  top_k?: number | null;
  repeat_penalty?: number | null;
  frequency_penalty?: number | null;
  presence_penalty?: number | null;
}

/** The OpenAI sampling members as a 1.3 per-run RKLLMInferParam; none given: the model's own settings. */
export function samplingInfer(core: ServerCore, request: SamplingRequest, maxTokens: number | undefined): PartialInferParam {
  // The 1.2 ABI's RKLLMInferParam has neither member: sampling is fixed at rkllm_init there.
  if (core.runtime.info.abi === '1.2') return {};
  const infer: PartialInferParam = {};
  if (maxTokens !== undefined) infer.max_new_tokens = maxTokens;
  const given = [request.temperature, request.top_p, request.top_k, request.repeat_penalty, request.frequency_penalty, request.presence_penalty].some(
    (value) => value !== undefined && value !== null,
  );
  if (given) {
    // sampling_params replaces every sampling setting for the run, so the unset ones come from the defaults.
    const defaults = core.defaultParam();
    const sampling: SamplingParam = {
      top_k: request.top_k ?? defaults.top_k,
      top_p: request.top_p ?? defaults.top_p,
      temperature: request.temperature ?? defaults.temperature,
      repeat_penalty: request.repeat_penalty ?? defaults.repeat_penalty,
      frequency_penalty: request.frequency_penalty ?? defaults.frequency_penalty,
      presence_penalty: request.presence_penalty ?? defaults.presence_penalty,
      mirostat: defaults.mirostat,
      mirostat_tau: defaults.mirostat_tau,
      mirostat_eta: defaults.mirostat_eta,
    };
    infer.sampling_params = sampling;
  }
  return infer;
}

/** Queues the request; throws at once (QUEUE_FULL, SHUTTING_DOWN, ...) when the model cannot take it. */
export function startGeneration(core: ServerCore, loaded: LoadedModel, spec: GenerationSpec): Generation {
  const matcher = new StopMatcher(spec.stop);
  let text = '';
  let tokens = 0;
  let cutReason: FinishReason | undefined;
  let resolveDone!: (output: GenerationOutput) => void;
  let rejectDone!: (error: unknown) => void;
  const done = new Promise<GenerationOutput>((resolve, reject) => {
    resolveDone = resolve;
    rejectDone = reject;
  });

  const take = (delta: string, released: string[]): void => {
    if (delta === '') return;
    text += delta;
    released.push(delta);
  };

  const onChunks = (chunks: readonly RunChunk[], job: Job, stream: Stream | undefined): void => {
    const released: string[] = [];
    let kept = 0;
    for (const chunk of chunks) {
      if (cutReason) break;
      kept += 1;
      tokens += 1;
      take(matcher.push(chunk.text), released);
      if (matcher.stopped) cutReason = 'stop';
      // When the runtime applies the same limit (1.3's max_new_tokens), it ends the run there
      // itself: the answer is whole in the KV cache, so the conversation can go on from it.
      else if (spec.maxTokens !== undefined && tokens >= spec.maxTokens && spec.runtimeTokenLimit !== spec.maxTokens) cutReason = 'length';
    }
    // Before the early finish, whose last chunk must follow them: nothing past the answer's end.
    stream?.addTokens(kept === chunks.length ? chunks : chunks.slice(0, kept));
    if (released.length > 0) spec.onText?.(released);
    if (cutReason) job.finishEarly({ text, token_count: tokens, state: 2, perf: NO_PERF });
  };

  /** Text held back as the possible start of a stop sequence, released: the answer ended without one. */
  const flushHeldBack = (): void => {
    const rest: string[] = [];
    take(matcher.flush(), rest);
    if (rest.length > 0) spec.onText?.(rest);
  };

  /** A run that failed at the context after some tokens: the answer so far, cut by the limit. */
  const metContext = (outcome: JobOutcome): boolean => outcome.kind === 'failed' && isContextOverflow(outcome.error) && tokens > 0;

  const onSettled = (outcome: JobOutcome): void => {
    if (outcome.kind === 'failed' && isContextOverflow(outcome.error)) {
      if (tokens > 0) {
        // The answer met the context: what came so far is the answer, cut by the limit.
        flushHeldBack();
        const output: GenerationOutput = { text, finishReason: 'length', promptTokens: 0, completionTokens: tokens, cut: true, prefillMs: 0, generateMs: 0 };
        spec.onSettled?.(output);
        resolveDone(output);
        return;
      }
      spec.onSettled?.(undefined, outcome.error);
      const overflow = { contextLength: spec.contextLength, promptTokens: undefined, reserve: 0, truncation: spec.truncation, estimated: false };
      rejectDone(contextLengthExceeded(overflow));
      return;
    }
    if (outcome.kind !== 'finished') {
      spec.onSettled?.(undefined, outcome.error);
      rejectDone(outcome.error);
      return;
    }
    if (cutReason === undefined) flushHeldBack();
    const budgetUsed = spec.maxTokens !== undefined && tokens >= spec.maxTokens;
    const limitReached = spec.runtimeTokenLimit > 0 && outcome.result.token_count >= spec.runtimeTokenLimit;
    const length = budgetUsed || limitReached || (cutReason === undefined && spec.contextFull?.() === true);
    const output: GenerationOutput = {
      text,
      finishReason: cutReason ?? (length ? 'length' : 'stop'),
      promptTokens: outcome.result.perf.prefill_tokens,
      completionTokens: cutReason ? tokens : outcome.result.token_count,
      cut: cutReason !== undefined,
      prefillMs: outcome.result.perf.prefill_time_ms,
      generateMs: outcome.result.perf.generate_time_ms,
    };
    spec.onSettled?.(output);
    resolveDone(output);
  };

  // input and infer come from prepare, when the job reaches the model.
  const client = spec.client;
  const { job, stream } = core.submitRun(loaded, {
    requestId: client?.requestId ?? null,
    input: { input_type: 0, prompt_input: '' },
    infer: {},
    session: client?.session,
    stream: client?.stream ? 'push' : 'none',
    prepare: spec.thinking ? () => spec.prepare().then(({ input, infer }) => ({ input: { ...input, enable_thinking: true }, infer })) : spec.prepare,
    onChunks,
    onSettled,
    // The stream ends as the answer does: finished, when the answer met the context.
    streamOutcome: (outcome) => (metContext(outcome) ? { kind: 'finished', result: { text, token_count: tokens, state: 2, perf: NO_PERF } } : outcome),
  });
  return { done, job, cancel: () => void job.cancel('connection_closed'), stream };
}

/** A finished generation's counts and token times, for its request record. */
export function generationFigures(generation: Generation, output: GenerationOutput): RunFigures {
  const perf = output.cut ? undefined : { prefill_time_ms: output.prefillMs, generate_time_ms: output.generateMs, generate_tokens: output.completionTokens };
  return { job: generation.job, promptTokens: perf ? output.promptTokens : undefined, generatedTokens: output.completionTokens, perf };
}
