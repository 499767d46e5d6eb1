// Every live stream by id, and their expiry: a stream lives while its request runs and its
// connection is open, then for streamExpiryMs after it finished or was last polled. A running
// stream that nobody can be pushed to (a poll-only client) is cancelled when its poller has been
// silent for streamExpiryMs. Expiry frees everything the stream held.

import { randomBytes } from 'crypto';
import { RkllmError } from '../errors';
import type { RequestId } from './job';
import type { Session } from './sessions';
import { Stream, type StreamChunk } from './stream';

export interface StreamLimits {
  streamExpiryMs: number;
  maxBufferedChunks: number;
  /** With test hooks, token chunks carry callback_us (see Stream). */
  enableTestHooks?: boolean;
}

export class StreamRegistry {
  readonly #streams = new Map<string, Stream>();
  readonly #timers = new Map<Stream, NodeJS.Timeout>();
  readonly #limits: StreamLimits;
  // A random prefix per server and a counter: unique, cheap, and not guessable across restarts.
  readonly #prefix = randomBytes(6).toString('hex');
  #counter = 0;

  constructor(limits: StreamLimits) {
    this.#limits = limits;
  }

  get size(): number {
    return this.#streams.size;
  }

  create(requestId: RequestId, owner: Session | undefined): Stream {
    const id = `st-${this.#prefix}-${++this.#counter}`;
    const stream = new Stream(id, requestId, owner, this.#limits.maxBufferedChunks, (target, chunks) => this.#push(target, chunks), this.#limits.enableTestHooks === true);
    this.#streams.set(id, stream);
    owner?.holdStream(stream);
    // A poll-only stream starts its silence clock at once.
    if (!owner) this.touch(stream);
    return stream;
  }

  /** The stream, or STREAM_NOT_FOUND. */
  get(streamId: string): Stream {
    const stream = this.#streams.get(streamId);
    if (!stream) throw new RkllmError(`no stream '${streamId}': it never existed, expired, or its connection closed`, 'STREAM_NOT_FOUND');
    return stream;
  }

  find(streamId: string): Stream | undefined {
    return this.#streams.get(streamId);
  }

  all(): IterableIterator<Stream> {
    return this.#streams.values();
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

  /** The stream's request ended: it stays pollable until it expires. */
  finished(stream: Stream): void {
    if (this.#streams.has(stream.id)) this.touch(stream);
  }

  remove(stream: Stream): void {
    if (!this.#streams.delete(stream.id)) return;
    const timer = this.#timers.get(stream);
    if (timer) clearTimeout(timer);
    this.#timers.delete(stream);
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
}
