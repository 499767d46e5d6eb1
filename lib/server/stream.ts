// One stream: the notifications of one request, numbered from 0, pushed to the connection that
// owns it (if it can be pushed to) and kept, up to a bound, for poll. The oldest chunks are
// dropped first; a poll that asks for dropped ones is told which range it missed.

import type { RequestId } from '../rpc/envelope';
import type { ErrorObject } from '../rpc/errors';
import type { RunChunk } from '../runtime/run';
import type { ConnectionState } from './connections';
import type { Job, JobOutcome } from './job';
import type { WireRunResult } from './run-result';

/** The params of an rkllm_result notification, minus stream_id and request_id. */
export interface StreamChunk {
  seq: number;
  state: number;
  text: string;
  token_id: number;
  /** Last chunk of a finished run. */
  perf?: WireRunResult['perf'];
  /** Last chunk of a run that failed in the runtime (state 3). */
  error?: ErrorObject;
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
  error?: ErrorObject;
}

/** Compact the kept chunks only once many were dropped, so dropping stays O(1) amortised. */
const COMPACT_AT = 1024;

export class Stream {
  readonly id: string;
  readonly requestId: RequestId;
  /** The connection notifications go to; undefined for a stream that is only polled. */
  readonly owner: ConnectionState | undefined;
  job: Job | undefined;
  done = false;
  outcome: JobOutcome | undefined;
  readonly ended: Promise<void>;
  #markEnded!: () => void;
  readonly #maxChunks: number;
  readonly #push: (stream: Stream, chunk: StreamChunk) => void;
  #chunks: StreamChunk[] = [];
  #head = 0;
  #nextSeq = 0;
  #cursor = 0;

  constructor(
    id: string,
    requestId: RequestId,
    owner: ConnectionState | undefined,
    maxChunks: number,
    push: (stream: Stream, chunk: StreamChunk) => void,
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

  addToken(chunk: RunChunk): void {
    if (this.done) return;
    const added: StreamChunk = { seq: this.#nextSeq, state: chunk.state, text: chunk.text, token_id: chunk.token_id };
    if (this.stampCallbackTime) added.callback_us = chunk.time_us;
    this.#add(added);
  }

  finish(outcome: JobOutcome): void {
    if (this.done) return;
    const last: StreamChunk = { seq: this.#nextSeq, state: 2, text: '', token_id: -1 };
    if (outcome.kind === 'finished') {
      last.perf = outcome.result.perf;
    } else if (outcome.kind === 'failed') {
      last.state = 3;
      last.error = outcome.error.toJSON();
    } else {
      last.aborted = true;
      last.reason = outcome.reason;
    }
    this.outcome = outcome;
    this.done = true;
    this.#add(last);
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
    else if (this.outcome) answer.error = this.outcome.error.toJSON();
    return answer;
  }

  /** Drops what the stream holds (on expiry or when its connection closes). */
  release(): void {
    this.#chunks = [];
    this.#head = 0;
  }

  #add(chunk: StreamChunk): void {
    this.#nextSeq++;
    this.#chunks.push(chunk);
    if (this.#chunks.length - this.#head > this.#maxChunks) {
      this.#head++;
      if (this.#head >= COMPACT_AT && this.#head * 2 >= this.#chunks.length) {
        this.#chunks = this.#chunks.slice(this.#head);
        this.#head = 0;
      }
    }
    this.#push(this, chunk);
  }
}
