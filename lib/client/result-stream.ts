// One request's stream: its rkllm_result notifications as an async iterable, ending after the
// last chunk (state 2 or 3, or aborted). Chunks are kept from the moment the request is sent, so
// none is lost before the consumer starts reading. Where the server cannot push (plain HTTP) the
// chunks are fetched with `poll` and handed out the same way.
//
// Bounds: idleTimeoutMs between arrivals (the reply counts), and optionally timeoutMs overall. A
// timeout only stops the wait; stopping early on purpose (the signal, cancel(), leaving a
// for-await loop) also asks the server to cancel the request.

import { invalidArgument } from '../errors';
import { ClientError, RpcResponseError } from './errors';
import { isFinalChunk, type ReplyMessage, type RequestId, type ResultChunk } from './messages';

export const DEFAULT_IDLE_TIMEOUT_MS = 60_000;
export const DEFAULT_POLL_INTERVAL_MS = 50;

export interface StreamOptions {
  /** Default: the client's next id. */
  id?: string | number;
  /** Longest wait for the next chunk or the reply (default 60 s; a queued run waits here too). */
  idleTimeoutMs?: number;
  /** Bound on the whole stream, reply included (default: none beyond the idle bound). */
  timeoutMs?: number;
  /** Aborting ends the stream with ABORTED and asks the server to cancel the request. */
  signal?: AbortSignal;
  /** Plain HTTP only: the pause between polls (default 50 ms). */
  pollIntervalMs?: number;
}

/** What a stream needs of its client. */
export interface StreamHost {
  readonly pushes: boolean;
  readonly exchanges: boolean;
  /** Sends the request; resolves with its reply; the signal stops the wait (and an HTTP exchange). */
  send(signal: AbortSignal): Promise<ReplyMessage>;
  call(method: string, params: unknown, options: { timeoutMs: number; signal: AbortSignal }): Promise<ReplyMessage>;
  cancel(params: Record<string, unknown>): void;
  forget(stream: ResultStream): void;
}

interface PollResult {
  request_id?: RequestId;
  chunks?: Omit<ResultChunk, 'stream_id' | 'request_id'>[];
  done?: boolean;
}

export class ResultStream implements AsyncIterable<ResultChunk> {
  readonly id: RequestId;
  readonly method: string;
  /**
   * The reply to the request as received: for rkllm_run the final result (after the last chunk),
   * for rkllm_run_async `{ stream_id }` (before the first). Error replies resolve too; it
   * rejects only when no reply came (timeout, close, abort).
   */
  readonly reply: Promise<ReplyMessage>;

  private readonly host: StreamHost;
  private readonly idleTimeoutMs: number;
  private readonly pollIntervalMs: number;
  private readonly signal: AbortSignal | undefined;
  private readonly controller = new AbortController();
  private readonly queue: ResultChunk[] = [];
  private head = 0;
  private knownStreamId: string | undefined;
  private sawFinal = false;
  private replied = false;
  private ended = false;
  private failure: Error | undefined;
  private failureThrown = false;
  /** Readers waiting for the next chunk (more than one when next() is called without awaiting). */
  private wakers: (() => void)[] = [];
  private iterating = false;
  private idleTimer: NodeJS.Timeout | undefined;
  private totalTimer: NodeJS.Timeout | undefined;
  private resolveReply!: (reply: ReplyMessage) => void;
  private rejectReply!: (error: Error) => void;

  constructor(id: RequestId, method: string, host: StreamHost, options: StreamOptions) {
    for (const field of ['idleTimeoutMs', 'timeoutMs', 'pollIntervalMs'] as const) {
      const value = options[field];
      if (value !== undefined && (typeof value !== 'number' || !Number.isFinite(value) || value <= 0)) {
        throw invalidArgument(field, 'must be a positive number of milliseconds');
      }
    }
    this.id = id;
    this.method = method;
    this.host = host;
    this.idleTimeoutMs = options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
    this.pollIntervalMs = options.pollIntervalMs ?? DEFAULT_POLL_INTERVAL_MS;
    this.signal = options.signal;
    this.reply = new Promise<ReplyMessage>((resolve, reject) => {
      this.resolveReply = resolve;
      this.rejectReply = reject;
    });
    // Whoever never looks at the reply must not get an unhandled rejection.
    this.reply.catch(() => undefined);
    if (options.timeoutMs !== undefined) {
      const timeoutMs = options.timeoutMs;
      this.totalTimer = setTimeout(() => this.timedOut(`not ended within ${timeoutMs} ms`), timeoutMs);
    }
  }

  /** The stream's id, once the reply or the first chunk has told it. */
  get streamId(): string | undefined {
    return this.knownStreamId;
  }

  /** True once the last chunk (or a failure) has arrived; queued chunks may still be unread. */
  get done(): boolean {
    return this.ended;
  }

  /** The reply's result; an error reply throws RpcResponseError. */
  async result(): Promise<unknown> {
    const reply = await this.reply;
    if ('error' in reply) throw new RpcResponseError(reply.error, reply.id, this.method);
    return reply.result;
  }

  /** Stops reading and asks the server to cancel the request (no effect once it has ended). */
  cancel(): void {
    this.abort('cancelled by the client');
  }

  /** Called by the client: sends the request. */
  start(): void {
    if (this.signal?.aborted) {
      this.fail(new ClientError('ABORTED', `${this.what()}: aborted before it was sent`, { cause: this.signal.reason }));
      return;
    }
    this.signal?.addEventListener('abort', this.onSignal, { once: true });
    this.armIdle();
    this.host.send(this.controller.signal).then(
      (reply) => this.onReply(reply),
      (error: Error) => {
        this.rejectReply(error);
        this.fail(error);
      },
    );
  }

  /** Called by the client for each rkllm_result whose request_id is this request's id. */
  push(chunk: ResultChunk): void {
    if (this.ended) return;
    if (this.knownStreamId === undefined) this.knownStreamId = String(chunk.stream_id);
    // Same request id, another stream: not this request's (a reused id); ignored here.
    else if (String(chunk.stream_id) !== this.knownStreamId) return;
    this.queue.push(chunk);
    this.armIdle();
    if (isFinalChunk(chunk)) {
      this.sawFinal = true;
      this.end();
    }
    this.wakeReader();
  }

  /** Called by the client when the transport closed. */
  fail(error: Error): void {
    if (this.ended) {
      // Ended, but the reply may still be due (rkllm_run's comes after the last chunk).
      if (!this.replied) this.controller.abort(error);
      return;
    }
    this.failure = error;
    this.ended = true;
    this.stopTimers();
    this.host.forget(this);
    this.signal?.removeEventListener('abort', this.onSignal);
    if (!this.replied) this.controller.abort(error);
    this.wakeReader();
  }

  [Symbol.asyncIterator](): AsyncIterator<ResultChunk> {
    if (this.iterating) throw invalidArgument('stream', 'can be iterated only once');
    this.iterating = true;
    return {
      next: () => this.next(),
      return: async () => {
        // Leaving a for-await loop early: the rest of the stream is not wanted.
        this.abort('the consumer stopped reading');
        return { value: undefined, done: true };
      },
    };
  }

  private async next(): Promise<IteratorResult<ResultChunk>> {
    for (;;) {
      if (this.head < this.queue.length) {
        const chunk = this.queue[this.head];
        this.queue[this.head++] = undefined as unknown as ResultChunk;
        if (this.head > 1024 && this.head * 2 > this.queue.length) {
          this.queue.splice(0, this.head);
          this.head = 0;
        }
        return { value: chunk, done: false };
      }
      if (this.ended) {
        if (this.failure && !this.failureThrown) {
          this.failureThrown = true;
          throw this.failure;
        }
        return { value: undefined, done: true };
      }
      await new Promise<void>((resolve) => this.wakers.push(resolve));
    }
  }

  private readonly onSignal = (): void => this.abort('aborted by its signal');

  private abort(why: string): void {
    if (this.ended) return;
    const streamId = this.knownStreamId;
    this.fail(new ClientError('ABORTED', `${this.what()}: ${why}`, { cause: this.signal?.aborted ? this.signal.reason : undefined }));
    // Over HTTP the aborted exchange already tells the server; a polled stream needs its id.
    if (streamId !== undefined) this.host.cancel({ stream_id: streamId });
    else if (!this.host.exchanges) this.host.cancel({ request_id: this.id });
  }

  private onReply(reply: ReplyMessage): void {
    this.replied = true;
    this.resolveReply(reply);
    if ('error' in reply) {
      // An error after the last chunk is how a cancelled rkllm_run ends; before it, it is the end.
      if (!this.sawFinal) this.fail(new RpcResponseError(reply.error, reply.id, this.method));
      return;
    }
    if (this.ended) return;
    this.armIdle();
    const streamId = (reply.result as { stream_id?: unknown } | null)?.stream_id;
    if (typeof streamId === 'string' && this.knownStreamId === undefined) this.knownStreamId = streamId;
    if (typeof streamId !== 'string') {
      // A success with no stream id and no chunk before it: this request started no stream.
      if (this.head === this.queue.length && this.queue.length === 0) this.end();
      return;
    }
    if (!this.host.pushes) void this.pollUntilDone(streamId);
  }

  private async pollUntilDone(streamId: string): Promise<void> {
    while (!this.ended) {
      let reply: ReplyMessage;
      try {
        reply = await this.host.call('poll', { stream_id: streamId }, { timeoutMs: this.idleTimeoutMs, signal: this.controller.signal });
      } catch (error) {
        this.fail(error as Error);
        return;
      }
      if (this.ended) return;
      if ('error' in reply) {
        this.fail(new RpcResponseError(reply.error, reply.id, 'poll'));
        return;
      }
      const result = reply.result as PollResult;
      for (const chunk of result.chunks ?? []) this.push({ ...chunk, stream_id: streamId, request_id: result.request_id ?? this.id } as ResultChunk);
      if (result.done && !this.ended) this.end();
      if (this.ended) return;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, this.pollIntervalMs);
        this.controller.signal.addEventListener('abort', () => {
          clearTimeout(timer);
          resolve();
        }, { once: true });
      });
    }
  }

  /** The last chunk is in: reading ends once the queue is read; the reply may still be due. */
  private end(): void {
    this.ended = true;
    this.stopTimers();
    this.host.forget(this);
    this.signal?.removeEventListener('abort', this.onSignal);
    if (!this.replied) {
      // rkllm_run's reply follows its last chunk at once; it gets one idle bound more.
      this.idleTimer = setTimeout(() => {
        if (!this.replied) this.controller.abort(new ClientError('TIMEOUT', `${this.what()}: no reply within ${this.idleTimeoutMs} ms of the last chunk`));
      }, this.idleTimeoutMs);
      void this.reply.finally(() => clearTimeout(this.idleTimer)).catch(() => undefined);
    }
  }

  private timedOut(why: string): void {
    const error = new ClientError('TIMEOUT', `${this.what()}: ${why}`);
    if (this.ended) {
      if (!this.replied) this.controller.abort(error);
    } else this.fail(error);
  }

  private armIdle(): void {
    if (this.ended) return;
    // Called per chunk: an armed timer is restarted, not replaced.
    if (this.idleTimer !== undefined) {
      this.idleTimer.refresh();
      return;
    }
    this.idleTimer = setTimeout(() => this.timedOut(`nothing arrived for ${this.idleTimeoutMs} ms`), this.idleTimeoutMs);
  }

  private stopTimers(): void {
    clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
    clearTimeout(this.totalTimer);
  }

  private wakeReader(): void {
    for (const wake of this.wakers.splice(0)) wake();
  }

  private what(): string {
    return `${this.method} stream (id ${JSON.stringify(this.id)})`;
  }
}
