// Every live stream by id, its expiry and its bounds. A stream lives while its request runs and
// its connection is open, then for streamExpiryMs after it finished or was last polled. A running
// stream that nobody can be pushed to (a poll-only client) is cancelled when its poller has been
// silent for streamExpiryMs. Expiry frees everything the stream held.
//
// Ids are 128 random bits, so holding one is the only way to reach a poll-only stream. The
// streams kept are bounded per owner, overall and in buffered bytes: at a bound the oldest
// finished stream is dropped to make room (one already delivered first), and a new stream is
// refused (TOO_MANY_STREAMS) only when every stream there is still running.

import { randomBytes } from 'crypto';
import { RkllmError } from '../errors';
import type { RequestId } from './job';
import { Stream, type StreamChunk, type StreamOwner } from './stream';

export interface StreamLimits {
  streamExpiryMs: number;
  maxBufferedChunks: number;
  /** Streams kept at once, over every client. */
  maxStreams: number;
  /** Streams one connection keeps at once (poll-only streams belong to none). */
  maxStreamsPerClient: number;
  /** Estimated bytes of chunks kept over every stream. */
  maxStreamBytes: number;
  /** With test hooks, token chunks carry callback_us (see Stream). */
  enableTestHooks?: boolean;
}

/** The one answer for a stream a client may not reach: the same as for one that never existed. */
function streamNotFound(streamId: string): RkllmError {
  return new RkllmError(`no stream '${streamId}': it never existed, expired, was dropped to make room, or its connection closed`, 'STREAM_NOT_FOUND');
}

function tooManyStreams(detail: string, scope: 'client' | 'server' | 'bytes', limit: number): RkllmError {
  return new RkllmError(detail, 'TOO_MANY_STREAMS', { facts: { scope, limit } });
}

export class StreamRegistry {
  readonly #streams = new Map<string, Stream>();
  readonly #timers = new Map<Stream, NodeJS.Timeout>();
  /** Finished streams in the order they finished: the oldest is dropped first to make room. */
  readonly #finished = new Set<Stream>();
  /** Finished poll-only streams per model: the unread ones hold a place in its queue. */
  readonly #pollOnlyFinished = new Map<object, Set<Stream>>();
  readonly #limits: StreamLimits;
  #bytes = 0;

  constructor(limits: StreamLimits) {
    this.#limits = limits;
  }

  get size(): number {
    return this.#streams.size;
  }

  /** Estimated bytes of the chunks every stream keeps. */
  get bytes(): number {
    return this.#bytes;
  }

  /**
   * A new stream of `model`, pushed to `owner` (or poll-only without one). Makes room at a bound
   * by dropping the oldest finished stream; throws TOO_MANY_STREAMS when nothing can go.
   */
  create(requestId: RequestId, owner: StreamOwner | undefined, model: object): Stream {
    this.#makeRoom(owner);
    const id = `st-${randomBytes(16).toString('hex')}`;
    const stream = new Stream({
      id,
      requestId,
      owner,
      model,
      maxChunks: this.#limits.maxBufferedChunks,
      events: { push: (target, chunks) => this.#push(target, chunks), resized: (target, delta) => this.#resized(target, delta) },
      stampCallbackTime: this.#limits.enableTestHooks === true,
    });
    this.#streams.set(id, stream);
    owner?.holdStream(stream);
    // A poll-only stream starts its silence clock at once.
    if (!owner) this.touch(stream);
    return stream;
  }

  /**
   * The stream as `client` may reach it: a pushed stream only by the connection that owns it, a
   * poll-only stream by whoever holds its id. Anything else is STREAM_NOT_FOUND, worded as for an
   * unknown id, so a guess learns nothing.
   */
  forClient(streamId: string, client: object): Stream {
    const stream = this.#streams.get(streamId);
    if (!stream || (stream.owner !== undefined && stream.owner.key !== client)) throw streamNotFound(streamId);
    return stream;
  }

  /** The stream whoever owns it (the server's own probes; never a client's request). */
  find(streamId: string): Stream | undefined {
    return this.#streams.get(streamId);
  }

  all(): IterableIterator<Stream> {
    return this.#streams.values();
  }

  /** Finished poll-only streams of this model whose chunks nobody has read to the end. */
  unreadOn(model: object): number {
    let unread = 0;
    for (const stream of this.#pollOnlyFinished.get(model) ?? []) if (!stream.delivered) unread++;
    return unread;
  }

  /** Restarts the expiry clock (on poll, and when the stream finishes). */
  touch(stream: Stream): void {
    const existing = this.#timers.get(stream);
    if (existing) {
      existing.refresh();
      return;
    }
    const timer = setTimeout(() => this.#expire(stream), this.#limits.streamExpiryMs);
    timer.unref();
    this.#timers.set(stream, timer);
  }

  /** The stream's request ended: it stays pollable until it expires or makes room. */
  finished(stream: Stream): void {
    if (!this.#streams.has(stream.id)) return;
    this.#finished.add(stream);
    if (!stream.owner) {
      let set = this.#pollOnlyFinished.get(stream.model);
      if (!set) this.#pollOnlyFinished.set(stream.model, (set = new Set()));
      set.add(stream);
    }
    this.touch(stream);
  }

  remove(stream: Stream): void {
    if (!this.#streams.delete(stream.id)) return;
    const timer = this.#timers.get(stream);
    if (timer) clearTimeout(timer);
    this.#timers.delete(stream);
    this.#finished.delete(stream);
    const set = this.#pollOnlyFinished.get(stream.model);
    if (set?.delete(stream) && set.size === 0) this.#pollOnlyFinished.delete(stream.model);
    this.#bytes -= stream.bytes;
    stream.release();
    stream.owner?.dropStream(stream);
  }

  clear(): void {
    for (const stream of [...this.#streams.values()]) this.remove(stream);
  }

  #expire(stream: Stream): void {
    if (!stream.done) stream.job?.cancel('expired');
    this.remove(stream);
  }

  #push(stream: Stream, chunks: readonly StreamChunk[]): void {
    const owner = stream.owner;
    if (!owner || !this.#streams.has(stream.id)) return;
    owner.sink.push(stream, chunks);
  }

  #resized(stream: Stream, delta: number): void {
    if (!this.#streams.has(stream.id)) return;
    this.#bytes += delta;
    if (delta <= 0 || this.#bytes <= this.#limits.maxStreamBytes) return;
    // Over the byte bound: finished streams go first, then the growing stream's oldest chunks.
    while (this.#bytes > this.#limits.maxStreamBytes) {
      if (!this.#dropOldestFinished(undefined, stream)) {
        this.#bytes -= stream.trimOldest(this.#bytes - this.#limits.maxStreamBytes);
        return;
      }
    }
  }

  #makeRoom(owner: StreamOwner | undefined): void {
    const limits = this.#limits;
    if (owner && owner.streams.size >= limits.maxStreamsPerClient && !this.#dropOldestFinished(owner)) {
      throw tooManyStreams(
        `this connection already has ${owner.streams.size} streams running or queued (limit ${limits.maxStreamsPerClient}); wait for one to end or cancel one`,
        'client',
        limits.maxStreamsPerClient,
      );
    }
    if (this.#streams.size >= limits.maxStreams && !this.#dropOldestFinished()) {
      throw tooManyStreams(`the server already keeps ${this.#streams.size} running or queued streams (limit ${limits.maxStreams}); try again later`, 'server', limits.maxStreams);
    }
    while (this.#bytes >= limits.maxStreamBytes) {
      if (!this.#dropOldestFinished()) {
        throw tooManyStreams(
          `running streams already buffer about ${this.#bytes} bytes (limit ${limits.maxStreamBytes}); read them or try again later`,
          'bytes',
          limits.maxStreamBytes,
        );
      }
    }
  }

  /**
   * Drops the oldest finished stream (of `owner` only, when given; never `except`), preferring
   * one whose chunks have all reached their client. False when there is none.
   */
  #dropOldestFinished(owner?: StreamOwner, except?: Stream): boolean {
    let fallback: Stream | undefined;
    for (const stream of this.#finished) {
      if (stream === except || (owner && stream.owner !== owner)) continue;
      if (stream.delivered) {
        this.remove(stream);
        return true;
      }
      fallback ??= stream;
    }
    if (!fallback) return false;
    this.remove(fallback);
    return true;
  }
}
