// One inference: an AsyncIterable of its chunks (for streaming) and a PromiseLike of its result
// (for awaiting). Either use alone is complete; chunks are kept for an iterator only, so a run that
// is just awaited accumulates its text and nothing else.

import { RKLLM_ERROR_CODES, RkllmError, type RkllmErrorCode } from '../errors';
import type { FloatBlock, NativeRunEvent, Perf, RunEventsListener } from '../native/binding';
import { argumentError } from './argument-error';
import { type CallSite, withCallSite } from './call-site';
import type { LLMCallState } from './constants';

export type LogitsBlock = FloatBlock & { vocab_size: number };
export type HiddenLayerBlock = FloatBlock & { embd_size: number };

/** One token's output. */
export interface RunChunk {
  /** 0, 1, 2, ... without gaps within a run. */
  seq: number;
  /** 0 NORMAL, or 1 WAITING (the token ended inside a character; its bytes come with a later one). */
  state: 0 | 1;
  /** Always whole UTF-8 (empty while a character is incomplete). */
  text: string;
  token_id: number;
  /** CLOCK_MONOTONIC microseconds when the runtime reported the token. */
  time_us: number;
  logits?: LogitsBlock;
  last_hidden_layer?: HiddenLayerBlock;
}

/** How a run finished. */
export interface RunResult {
  /** The chunks' texts joined. */
  text: string;
  /** Token events reported, WAITING ones included. */
  token_count: number;
  state: typeof LLMCallState.RKLLM_RUN_FINISH;
  perf: Perf;
  /** The last logits reported (GET_LOGITS mode). */
  logits?: LogitsBlock;
  /** The last hidden layer reported (GET_LAST_HIDDEN_LAYER mode). */
  last_hidden_layer?: HiddenLayerBlock;
}

export interface RunOptions {
  /** Aborting it cancels the run (an already-aborted signal means the run never starts). */
  signal?: AbortSignal;
}

/** The native side of one run, as the owning Model provides it. */
export interface RunPort {
  /** Queues the run; returns its id. May throw (bad input, destroyed model). */
  start(listener: RunEventsListener): number;
  cancel(runId: number): boolean;
}

type EndEvent = Extract<NativeRunEvent, { kind: 'end' }>;
type TokenEvent = Extract<NativeRunEvent, { kind: 'token' }>;

interface PendingNext {
  resolve(result: IteratorResult<RunChunk>): void;
  reject(error: unknown): void;
}

const EMPTY_PERF: Perf = {
  prefill_time_ms: 0,
  prefill_tokens: 0,
  generate_time_ms: 0,
  generate_tokens: 0,
  memory_usage_mb: 0,
};

/** Compacting the queue only when half of it is consumed keeps taking chunks O(1) amortised. */
const QUEUE_COMPACT_MIN = 1024;

function errorCodeOf(code: string | undefined): RkllmErrorCode {
  return (RKLLM_ERROR_CODES as readonly string[]).includes(code ?? '') ? (code as RkllmErrorCode) : 'RUN_FAILED';
}

function isAbortSignal(value: unknown): value is AbortSignal {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as AbortSignal).aborted === 'boolean' &&
    typeof (value as AbortSignal).addEventListener === 'function'
  );
}

export class Run implements AsyncIterable<RunChunk>, PromiseLike<RunResult> {
  /** The native run id (for cancel); -1 when the run was refused before it was queued. */
  readonly id: number;

  readonly #result: Promise<RunResult>;
  #resolveResult!: (result: RunResult) => void;
  #rejectResult!: (error: unknown) => void;
  readonly #cancelNative: (runId: number) => boolean;
  readonly #site: CallSite;
  #detachSignal: (() => void) | undefined;

  // What the result is built from.
  #nextSeq = 0;
  #text = '';
  #tokenCount = 0;
  #logits: LogitsBlock | undefined;
  #lastHiddenLayer: HiddenLayerBlock | undefined;
  #ended = false;
  #error: unknown;

  // Delivery to the (single, optional) iterator.
  #queue: RunChunk[] = [];
  #queueHead = 0;
  /** False once nobody can take chunks: the run was awaited without an iterator, or the iterator closed. */
  #keepChunks = true;
  #chunksDropped = false;
  #iteratorTaken = false;
  #iteratorClosed = false;
  #errorDelivered = false;
  #pendingNext: PendingNext | undefined;
  /** Push delivery (onChunks): one call per native batch, no promise per chunk. */
  #listener: ((chunks: readonly RunChunk[]) => void) | undefined;
  #batch: RunChunk[] | undefined;

  constructor(port: RunPort, options: RunOptions, site: CallSite) {
    this.#result = new Promise<RunResult>((resolve, reject) => {
      this.#resolveResult = resolve;
      this.#rejectResult = reject;
    });
    // Whoever only iterates gets the error from the iterator; this rejection must not go unhandled.
    this.#result.catch(() => undefined);
    this.#cancelNative = (runId) => port.cancel(runId);
    this.#site = site;

    const signal = options.signal;
    // Checked before the run starts: a bad signal found later would leave a run nobody can stop.
    if (signal !== undefined && !isAbortSignal(signal)) {
      this.id = -1;
      this.#fail(argumentError('options.signal', 'expected an AbortSignal'));
      return;
    }
    if (signal?.aborted) {
      this.id = -1;
      this.#fail(new RkllmError('the run was aborted by its signal before it started', 'RUN_ABORTED'));
      return;
    }
    let runId: number;
    try {
      runId = port.start((events) => this.#onEvents(events));
    } catch (error) {
      this.id = -1;
      this.#fail(error);
      return;
    }
    this.id = runId;
    if (signal) {
      const onAbort = (): void => {
        this.cancel();
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.#detachSignal = () => signal.removeEventListener('abort', onAbort);
    }
  }

  /** Stops this run, queued or running. False when it has already ended. */
  cancel(): boolean {
    if (this.#ended || this.id < 0) return false;
    return this.#cancelNative(this.id);
  }

  then<TResult1 = RunResult, TResult2 = never>(
    onfulfilled?: ((value: RunResult) => TResult1 | PromiseLike<TResult1>) | null,
    onrejected?: ((reason: unknown) => TResult2 | PromiseLike<TResult2>) | null,
  ): Promise<TResult1 | TResult2> {
    this.#noteAwaited();
    return this.#result.then(onfulfilled, onrejected);
  }

  catch<TResult = never>(
    onrejected?: ((reason: unknown) => TResult | PromiseLike<TResult>) | null,
  ): Promise<RunResult | TResult> {
    return this.then(undefined, onrejected);
  }

  finally(onfinally?: (() => void) | null): Promise<RunResult> {
    this.#noteAwaited();
    return this.#result.finally(onfinally);
  }

  /**
   * The run's chunks, once. Start iterating before awaiting the run: a run awaited without an
   * iterator stops keeping its chunks, and iterating it afterwards throws.
   */
  [Symbol.asyncIterator](): AsyncIterableIterator<RunChunk> {
    if (this.#iteratorTaken) throw new RkllmError('a Run can be iterated only once', 'INVALID_ARGUMENT');
    if (this.#chunksDropped) {
      throw new RkllmError(
        'this Run was awaited before it was iterated, so its chunks went to the result only; iterate first',
        'INVALID_ARGUMENT',
      );
    }
    this.#iteratorTaken = true;
    this.#keepChunks = !this.#iteratorClosed;
    const iterator: AsyncIterableIterator<RunChunk> = {
      next: () => this.#next(),
      return: () => this.#closeIterator(),
      [Symbol.asyncIterator]: () => iterator,
    };
    return iterator;
  }

  /**
   * Delivers the chunks in the batches the runtime reported them, synchronously as each batch
   * arrives, instead of through an iterator (a server relaying tokens keeps the runtime's
   * batching this way). Call it right after run(), before any chunk can arrive; once only, and
   * not together with iteration.
   */
  onChunks(listener: (chunks: readonly RunChunk[]) => void): void {
    if (typeof listener !== 'function') throw argumentError('listener', 'expected a function');
    if (this.#iteratorTaken) throw new RkllmError('a Run delivers its chunks once: to one iterator or one onChunks listener', 'INVALID_ARGUMENT');
    this.#iteratorTaken = true;
    this.#listener = listener;
    this.#queue = [];
    this.#queueHead = 0;
  }

  #noteAwaited(): void {
    if (this.#iteratorTaken || !this.#keepChunks) return;
    this.#keepChunks = false;
    if (this.#queue.length > this.#queueHead) this.#chunksDropped = true;
    this.#queue = [];
    this.#queueHead = 0;
  }

  #onEvents(events: NativeRunEvent[]): void {
    const listener = this.#listener;
    if (listener) this.#batch = [];
    for (const event of events) {
      if (this.#ended) break; // The contract puts 'end' last; anything after it is ignored.
      if (event.kind === 'token') this.#onToken(event);
      else {
        // The batch's tokens go out before the end settles the result.
        this.#flushBatch();
        this.#onEnd(event);
      }
    }
    this.#flushBatch();
    this.#serveNext();
  }

  #flushBatch(): void {
    const batch = this.#batch;
    if (!batch || batch.length === 0 || !this.#listener) return;
    this.#batch = undefined;
    this.#listener(batch);
  }

  #onToken(event: TokenEvent): void {
    const seq = this.#nextSeq++;
    this.#text += event.text;
    this.#tokenCount++;
    if (event.logits) this.#logits = event.logits;
    if (event.last_hidden_layer) this.#lastHiddenLayer = event.last_hidden_layer;
    if (!this.#keepChunks && !this.#batch) {
      this.#chunksDropped = true;
      return;
    }
    const chunk: RunChunk = {
      seq,
      state: event.state,
      text: event.text,
      token_id: event.token_id,
      time_us: event.time_us,
    };
    if (event.logits) chunk.logits = event.logits;
    if (event.last_hidden_layer) chunk.last_hidden_layer = event.last_hidden_layer;
    if (this.#batch) this.#batch.push(chunk);
    else this.#queue.push(chunk);
  }

  #onEnd(event: EndEvent): void {
    if (event.status === 'finish') {
      const result: RunResult = {
        text: this.#text,
        token_count: this.#tokenCount,
        state: 2,
        perf: event.perf ?? { ...EMPTY_PERF },
      };
      if (this.#logits) result.logits = this.#logits;
      if (this.#lastHiddenLayer) result.last_hidden_layer = this.#lastHiddenLayer;
      this.#settle();
      this.#resolveResult(result);
    } else if (event.status === 'error') {
      const { message = 'the run ended in the runtime error state', code, fn, returnCode, field, reason, facts } = event.error ?? {};
      this.#fail(new RkllmError(message, errorCodeOf(code), { fn, returnCode, field, reason, facts }));
    } else {
      this.#fail(new RkllmError(`run ${this.id} was aborted`, 'RUN_ABORTED'));
    }
  }

  #fail(error: unknown): void {
    this.#settle();
    this.#error = withCallSite(error, this.#site);
    this.#rejectResult(this.#error);
    this.#serveNext();
  }

  #settle(): void {
    this.#ended = true;
    this.#detachSignal?.();
    this.#detachSignal = undefined;
  }

  #takeChunk(): RunChunk | undefined {
    if (this.#queueHead >= this.#queue.length) return undefined;
    const chunk = this.#queue[this.#queueHead++];
    if (this.#queueHead === this.#queue.length) {
      this.#queue = [];
      this.#queueHead = 0;
    } else if (this.#queueHead >= QUEUE_COMPACT_MIN && this.#queueHead * 2 >= this.#queue.length) {
      this.#queue = this.#queue.slice(this.#queueHead);
      this.#queueHead = 0;
    }
    return chunk;
  }

  /** What the iterator says once the chunks are exhausted: the error (once), then done. */
  #endOfChunks(): Promise<IteratorResult<RunChunk>> {
    if (this.#error !== undefined && !this.#errorDelivered && !this.#iteratorClosed) {
      this.#errorDelivered = true;
      return Promise.reject(this.#error);
    }
    return Promise.resolve({ value: undefined, done: true });
  }

  #next(): Promise<IteratorResult<RunChunk>> {
    const chunk = this.#takeChunk();
    if (chunk) return Promise.resolve({ value: chunk, done: false });
    if (this.#ended || this.#iteratorClosed) return this.#endOfChunks();
    if (this.#pendingNext) {
      return Promise.reject(new RkllmError('next() called before the previous next() settled', 'INVALID_ARGUMENT'));
    }
    return new Promise((resolve, reject) => {
      this.#pendingNext = { resolve, reject };
    });
  }

  /** Hands the waiting next() a chunk or the end, when either is there. */
  #serveNext(): void {
    const pending = this.#pendingNext;
    if (!pending) return;
    const chunk = this.#takeChunk();
    if (chunk) {
      this.#pendingNext = undefined;
      pending.resolve({ value: chunk, done: false });
    } else if (this.#ended) {
      this.#pendingNext = undefined;
      this.#endOfChunks().then(pending.resolve, pending.reject);
    }
  }

  /** `break` or `return` out of for-await: the caller no longer wants the run. */
  #closeIterator(): Promise<IteratorResult<RunChunk>> {
    this.#iteratorClosed = true;
    this.#keepChunks = false;
    this.#queue = [];
    this.#queueHead = 0;
    this.cancel();
    const pending = this.#pendingNext;
    this.#pendingNext = undefined;
    pending?.resolve({ value: undefined, done: true });
    return Promise.resolve({ value: undefined, done: true });
  }
}
