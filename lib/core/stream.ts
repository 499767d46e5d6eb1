// One stream: the notifications of one request, numbered from 0, pushed to the connection that
// owns it (if it can be pushed to) and kept, up to a bound, for poll. The oldest chunks are
// dropped first; a poll that asks for dropped ones is told which range it missed.

import type { RkllmError } from '../errors';
import type { RunChunk } from '../runtime/run';
import type { Job, JobOutcome, RequestId } from './job';
import type { WireRunResult } from './run-result';

/** Where a session's stream chunks go: the front end turns them into its wire messages. */
export interface StreamSink {
  /**
   * New chunks of one of the session's streams, in order, in the runtime's batches. A client
   * found gone here is the front end's to report (ServerCore.closeSession), never the core's.
   */
  push(stream: Stream, chunks: readonly StreamChunk[]): void;
}

/** The session a stream is pushed to (lib/core/sessions.ts). */
export interface StreamOwner {
  readonly key: object;
  readonly sink: StreamSink;
  /** The stream was removed (expired, cleared): the session lets go of it. */
  dropStream(stream: Stream): void;
}

/** One numbered piece of a stream: what a front end sends as one notification. */
export interface StreamChunk {
  seq: number;
  state: number;
  text: string;
  token_id: number;
  /** Last chunk of a finished run. */
  perf?: WireRunResult['perf'];
  /** Last chunk of a run that failed in the runtime (state 3); the front end renders it. */
  error?: RkllmError;
  /** Last chunk of a request that was cancelled, aborted, timed out or lost its model. */
  aborted?: true;
  reason?: string;
  /** Test hooks only: CLOCK_MONOTONIC µs of the runtime's callback (bench/ measures delivery with it). */
  callback_us?: number;
}

export interface PollAnswer {
  stream_id: string;
  request_id: RequestId;
  chunks: StreamChunk[];
  done: boolean;
  /** The seq the next chunk will have (what a cursor poll starts from next time). */
  next_seq: number;
  missed_from_seq?: number;
  missed_to_seq?: number;
  result?: WireRunResult;
  error?: RkllmError;
}

/** Compact the kept chunks only once many were dropped, so dropping stays O(1) amortised. */
const COMPACT_AT = 1024;

export class Stream {
  readonly id: string;
  readonly requestId: RequestId;
  /** The session chunks are pushed to; undefined for a stream that is only polled. */
  readonly owner: StreamOwner | undefined;
  job: Job | undefined;
  done = false;
  outcome: JobOutcome | undefined;
  readonly ended: Promise<void>;
  #markEnded!: () => void;
  readonly #maxChunks: number;
  readonly #push: (stream: Stream, chunks: readonly StreamChunk[]) => void;
  #chunks: StreamChunk[] = [];
  #head = 0;
  #nextSeq = 0;
  #cursor = 0;

  constructor(
    id: string,
    requestId: RequestId,
    owner: StreamOwner | undefined,
    maxChunks: number,
    push: (stream: Stream, chunks: readonly StreamChunk[]) => void,
    private readonly stampCallbackTime = false,
  ) {
    this.id = id;
    this.requestId = requestId;
    this.owner = owner;
    this.#maxChunks = Math.max(1, maxChunks);
    this.#push = push;
    this.ended = new Promise((resolve) => {
      this.#markEnded = resolve;
    });
  }

  /** A batch of the run's tokens: kept for poll, and pushed to the owner as one batch. */
  addTokens(chunks: readonly RunChunk[]): void {
    if (this.done || chunks.length === 0) return;
    const added: StreamChunk[] = new Array<StreamChunk>(chunks.length);
    for (let index = 0; index < chunks.length; index++) {
      const chunk = chunks[index];
      const item: StreamChunk = { seq: this.#nextSeq + index, state: chunk.state, text: chunk.text, token_id: chunk.token_id };
      if (this.stampCallbackTime) item.callback_us = chunk.time_us;
      added[index] = item;
    }
    this.#add(added);
  }

  finish(outcome: JobOutcome): void {
    if (this.done) return;
    const last: StreamChunk = { seq: this.#nextSeq, state: 2, text: '', token_id: -1 };
    if (outcome.kind === 'finished') {
      last.perf = outcome.result.perf;
    } else if (outcome.kind === 'failed') {
      last.state = 3;
      last.error = outcome.error;
    } else {
      last.aborted = true;
      last.reason = outcome.reason;
    }
    this.outcome = outcome;
    this.done = true;
    this.#add([last]);
    this.#markEnded();
  }

  /** Without fromSeq: what earlier cursor polls have not returned. With it: from that seq on. */
  poll(fromSeq: number | undefined): PollAnswer {
    const oldest = this.#nextSeq - (this.#chunks.length - this.#head);
    const wanted = fromSeq ?? this.#cursor;
    const start = Math.max(wanted, oldest);
    const chunks = start >= this.#nextSeq ? [] : this.#chunks.slice(this.#head + (start - oldest));
    this.#cursor = Math.max(this.#cursor, this.#nextSeq);
    const answer: PollAnswer = {
      stream_id: this.id,
      request_id: this.requestId,
      chunks,
      done: this.done,
      next_seq: this.#nextSeq,
    };
    if (wanted < oldest) {
      answer.missed_from_seq = wanted;
      answer.missed_to_seq = oldest - 1;
    }
    if (this.outcome?.kind === 'finished') answer.result = this.outcome.result;
    else if (this.outcome) answer.error = this.outcome.error;
    return answer;
  }

  /** Drops what the stream holds (on expiry or when its connection closes). */
  release(): void {
    this.#chunks = [];
    this.#head = 0;
  }

  #add(chunks: readonly StreamChunk[]): void {
    this.#nextSeq += chunks.length;
    for (const chunk of chunks) this.#chunks.push(chunk);
    const excess = this.#chunks.length - this.#head - this.#maxChunks;
    if (excess > 0) {
      this.#head += excess;
      if (this.#head >= COMPACT_AT && this.#head * 2 >= this.#chunks.length) {
        this.#chunks = this.#chunks.slice(this.#head);
        this.#head = 0;
      }
    }
    this.#push(this, chunks);
  }
}
