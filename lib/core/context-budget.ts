// How much of a model's context a conversation takes, before the run that would find out.
//
// The runtime counts tokens exactly but offers no way to ask it before a run: librkllmrt exports
// no tokenizer (the 1.3 tokenizer callback is one the caller supplies to the runtime, not the
// reverse: docs/rkllm-abi.md, "Functions"), and a prompt too large for the context only fails
// the run. Two counts are exact: rkllm_get_kv_cache_size (what the cache holds) and a finished
// run's perf.prefill_tokens (what its prompt took). So a prompt's tokens are estimated from its
// UTF-8 bytes, with the bytes-per-token ratio learnt per model from its own finished runs (text
// sent against prefill_tokens), and a safety margin on top. Until a model has run, a ratio that
// over-counts ordinary English for the tokenizers RK3588 models use is assumed. The runtime's own
// refusal stays the last word; front ends map it to the same error.

import { RkllmError } from '../errors';

/** Bytes per token assumed before a model has run (English prose is nearer 4 for Qwen and Llama 3). */
const INITIAL_BYTES_PER_TOKEN = 3;
/** Estimates are raised by a tenth (as 11/10, exact in floating point): the learnt ratio is an average over mixed text. */
const MARGIN_TENTHS = 11;
/** A run's prompt this short says more about template marks than about the text: not learnt from. */
const MIN_LEARNING_TOKENS = 32;

export class TokenEstimator {
  #bytesPerToken = INITIAL_BYTES_PER_TOKEN;

  get bytesPerToken(): number {
    return this.#bytesPerToken;
  }

  /** Estimated tokens of `text` (0 for ''). */
  estimate(text: string): number {
    if (text === '') return 0;
    return Math.ceil((Buffer.byteLength(text, 'utf8') * MARGIN_TENTHS) / (this.#bytesPerToken * 10));
  }

  /** A finished run prefilled `text` as `tokens` tokens (perf.prefill_tokens). */
  learn(text: string, tokens: number): void {
    if (tokens < MIN_LEARNING_TOKENS) return;
    const ratio = Buffer.byteLength(text, 'utf8') / tokens;
    // Bounded: one odd run (a prompt of emoji, a prompt cache) must not skew the next estimate wildly.
    this.#bytesPerToken = Math.min(8, Math.max(1, ratio));
  }
}

const estimators = new WeakMap<object, TokenEstimator>();

/** The one estimator of a loaded model, shared by every front end, so each learns from all its runs. */
export function tokenEstimatorOf(loaded: object): TokenEstimator {
  let estimator = estimators.get(loaded);
  if (!estimator) {
    estimator = new TokenEstimator();
    estimators.set(loaded, estimator);
  }
  return estimator;
}

export interface ContextFit<T> {
  /** The messages kept, oldest first (the last one always). */
  readonly kept: T[];
  /** Messages left out from the front. */
  readonly dropped: number;
  /** Estimated tokens of the prompt with `kept`. */
  readonly promptTokens: number;
  /** Whether prompt plus reserve fit the context. */
  readonly fits: boolean;
}

/**
 * Fits a conversation into `contextLength` tokens with `reserve` left for the answer. With
 * 'drop_oldest' the oldest messages go first (the system prompt is not among them: `cost` counts
 * it apart), and the kept part never starts with an answer; the last message is always kept.
 * With 'refuse' nothing is dropped. `cost(kept)` is the estimated prompt for those messages.
 */
export function fitConversation<T extends { role: string }>(
  messages: readonly T[],
  cost: (kept: readonly T[]) => number,
  contextLength: number,
  reserve: number,
  truncation: 'refuse' | 'drop_oldest',
): ContextFit<T> {
  let start = 0;
  let promptTokens = cost(messages);
  if (truncation === 'drop_oldest') {
    while (promptTokens + reserve > contextLength && start < messages.length - 1) {
      start += 1;
      while (start < messages.length - 1 && messages[start].role === 'assistant') start += 1;
      promptTokens = cost(messages.slice(start));
    }
  }
  return { kept: messages.slice(start), dropped: start, promptTokens, fits: promptTokens + reserve <= contextLength };
}

/**
 * Whether a failed run's error is the runtime refusing a context overflow. The emulated runtime
 * says "context length exceeded: ..." (docs/emulated-runtime.md, KV cache); librkllmrt's refusal
 * of a long prompt was reported as "prompt gather than max context (prompt: N tokens, max
 * context: M)" (github.com/NotPunchnox/rkllama issue 25). Both name the context.
 */
export function isContextOverflow(error: { code?: string; message: string }): boolean {
  return error.code === 'RUN_FAILED' && /context/i.test(error.message);
}

export interface ContextOverflow {
  contextLength: number;
  /** The prompt's tokens; undefined when not known (the runtime refused without a count). */
  promptTokens: number | undefined;
  /** Tokens kept free for the answer. */
  reserve: number;
  truncation: 'refuse' | 'drop_oldest';
  /** Whether promptTokens is this module's estimate rather than the runtime's count. */
  estimated: boolean;
}

/** The domain error for a conversation the context cannot hold; each front end words it for its wire. */
export function contextLengthExceeded(overflow: ContextOverflow): RkllmError {
  const needs = overflow.promptTokens === undefined ? 'does not fit' : `needs ${overflow.estimated ? 'about ' : ''}${overflow.promptTokens + overflow.reserve} tokens`;
  return new RkllmError(
    `the conversation ${needs}, more than the model's context of ${overflow.contextLength} (max_context_len); shorten it, raise max_context_len, or set the model's truncation to 'drop_oldest'`,
    'CONTEXT_LENGTH_EXCEEDED',
    {
      facts: {
        context_length: overflow.contextLength,
        prompt_tokens: overflow.promptTokens ?? null,
        reserve: overflow.reserve,
        estimated: overflow.estimated,
        truncation: overflow.truncation,
      },
    },
  );
}

/** The overflow a CONTEXT_LENGTH_EXCEEDED error describes. */
export function overflowOf(error: RkllmError): ContextOverflow {
  const facts = error.facts ?? {};
  return {
    contextLength: Number(facts.context_length),
    promptTokens: typeof facts.prompt_tokens === 'number' ? facts.prompt_tokens : undefined,
    reserve: Number(facts.reserve ?? 0),
    truncation: facts.truncation === 'drop_oldest' ? 'drop_oldest' : 'refuse',
    estimated: facts.estimated === true,
  };
}
