// One stream: the notifications of one request, numbered from 0, pushed to the connection that
// owns it (if it can be pushed to) and kept, up to a bound, for poll. The oldest chunks are
// dropped first; a poll that asks for dropped ones is told which range it missed. The stream
// keeps an estimate of the bytes it holds, so the registry can bound them across streams.

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
  /** The streams it holds now (the registry bounds them per owner). */
  readonly streams: ReadonlySet<Stream>;
  /** A new stream of the session's. */
  holdStream(stream: Stream): void;
  /** The stream was removed (expired, cleared): the session lets go of it. */
  dropStream(stream: Stream): void;
}

/** What a stream tells its registry. */
export interface StreamEvents {
  /** New chunks, in order: pushed to the owner, if any. */
  push(stream: Stream, chunks: readonly StreamChunk[]): void;
  /** The bytes the stream keeps changed by `delta` (negative when chunks were dropped). */
  resized(stream: Stream, delta: number): void;
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
  /** Where the next page starts: the seq after this page's last chunk (what a cursor poll starts from next time). */
  next_seq: number;
  missed_from_seq?: number;
  missed_to_seq?: number;
  result?: WireRunResult;
  error?: RkllmError;
}

/** Compact the kept chunks only once many were dropped, so dropping stays O(1) amortised. */
const COMPACT_AT = 1024;

/**
 * What one kept chunk costs in memory, estimated: the object, its numbers and the heap around
 * them (the unpolled-streams attack of test/reliability grew RSS by about 130 bytes a chunk), its
 * text at two bytes a character at most, and the perf or error of a last chunk.
 */
const CHUNK_BYTES = 128;
const LAST_CHUNK_EXTRA_BYTES = 200;

export function chunkBytes(chunk: StreamChunk): number {
  const last = chunk.perf !== undefined || chunk.error !== undefined || chunk.aborted === true;
  return CHUNK_BYTES + 2 * chunk.text.length + (last ? LAST_CHUNK_EXTRA_BYTES + 2 * (chunk.reason?.length ?? 0) : 0);
}

export interface StreamOptions {
  id: string;
  requestId: RequestId;
  /** The session chunks are pushed to; undefined for a stream that is only polled. */
  owner: StreamOwner | undefined;
  /** The model it runs on (its unread finished streams count against that model's queue). */
  model: object;
  maxChunks: number;
  events: StreamEvents;
  /** Test hooks: token chunks carry callback_us. */
  stampCallbackTime?: boolean;
}

export class Stream {
  readonly id: string;
  readonly requestId: RequestId;
  /** The session chunks are pushed to; undefined for a stream that is only polled. */
  readonly owner: StreamOwner | undefined;
  readonly model: object;
  job: Job | undefined;
  done = false;
  outcome: JobOutcome | undefined;
  readonly ended: Promise<void>;
  #markEnded!: () => void;
  readonly #maxChunks: number;
  readonly #events: StreamEvents;
  readonly #stampCallbackTime: boolean;
  #chunks: StreamChunk[] = [];
  #head = 0;
  #nextSeq = 0;
  #cursor = 0;
  #bytes = 0;
  #released = false;

  constructor(options: StreamOptions) {
    this.id = options.id;
    this.requestId = options.requestId;
    this.owner = options.owner;
    this.model = options.model;
    this.#maxChunks = Math.max(1, options.maxChunks);
    this.#events = options.events;
    this.#stampCallbackTime = options.stampCallbackTime === true;
    this.ended = new Promise((resolve) => {
      this.#markEnded = resolve;
    });
  }

  /** Estimated bytes of the chunks kept. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Every chunk has reached its client: pushed to the owner, or returned by a poll. */
  get delivered(): boolean {
    return this.owner !== undefined || this.#cursor >= this.#nextSeq;
  }

  /** A batch of the run's tokens: kept for poll, and pushed to the owner as one batch. */
  addTokens(chunks: readonly RunChunk[]): void {
    if (this.done || chunks.length === 0) return;
    const added: StreamChunk[] = new Array<StreamChunk>(chunks.length);
    for (let index = 0; index < chunks.length; index++) {
      const chunk = chunks[index];
      const item: StreamChunk = { seq: this.#nextSeq + index, state: chunk.state, text: chunk.text, token_id: chunk.token_id };
      if (this.#stampCallbackTime) item.callback_us = chunk.time_us;
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

  /**
   * One page of kept chunks, at most maxChunks. Without fromSeq it starts where earlier polls
   * ended (a cursor); with it, at that seq. next_seq is where the next page starts; done is true
   * only once the request has ended and this page reaches its last chunk (the result comes then).
   */
  poll(fromSeq: number | undefined, maxChunks: number): PollAnswer {
    const oldest = this.#nextSeq - (this.#chunks.length - this.#head);
    const wanted = fromSeq ?? this.#cursor;
    const start = Math.max(wanted, oldest);
    const end = Math.min(this.#nextSeq, start + Math.max(1, maxChunks));
    const chunks = start >= end ? [] : this.#chunks.slice(this.#head + (start - oldest), this.#head + (end - oldest));
    this.#cursor = Math.max(this.#cursor, end);
    const done = this.done && end >= this.#nextSeq;
    const answer: PollAnswer = {
      stream_id: this.id,
      request_id: this.requestId,
      chunks,
      done,
      next_seq: end,
    };
    if (wanted < oldest) {
      answer.missed_from_seq = wanted;
      answer.missed_to_seq = oldest - 1;
    }
    const outcome = done ? this.outcome : undefined;
    if (outcome?.kind === 'finished') answer.result = outcome.result;
    else if (outcome) answer.error = outcome.error;
    return answer;
  }

  /**
   * Drops the oldest kept chunks, keeping the newest one, until `bytes` are freed or nothing more
   * can go (the registry's bound on buffered bytes). Returns the bytes freed; polls report the gap.
   */
  trimOldest(bytes: number): number {
    let freed = 0;
    while (freed < bytes && this.#chunks.length - this.#head > 1) freed += chunkBytes(this.#chunks[this.#head++]);
    this.#compact();
    this.#bytes -= freed;
    return freed;
  }

  /** Drops what the stream holds (on expiry or when its connection closes); it keeps nothing after. */
  release(): void {
    this.#released = true;
    this.#chunks = [];
    this.#head = 0;
    this.#bytes = 0;
  }

  #add(chunks: readonly StreamChunk[]): void {
    this.#nextSeq += chunks.length;
    if (!this.#released) {
      let delta = 0;
      for (const chunk of chunks) {
        this.#chunks.push(chunk);
        delta += chunkBytes(chunk);
      }
      const excess = this.#chunks.length - this.#head - this.#maxChunks;
      for (let dropped = 0; dropped < excess; dropped++) delta -= chunkBytes(this.#chunks[this.#head++]);
      this.#compact();
      this.#bytes += delta;
      this.#events.resized(this, delta);
    }
    this.#events.push(this, chunks);
  }

  #compact(): void {
    if (this.#head >= COMPACT_AT && this.#head * 2 >= this.#chunks.length) {
      this.#chunks = this.#chunks.slice(this.#head);
      this.#head = 0;
    }
  }
}
