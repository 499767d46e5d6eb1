// A JSON-RPC 2.0 client over any ClientTransport: requests matched to replies by id, batches,
// notifications, and streams (the rkllm_result notifications of one request, matched by
// request_id and stream_id). Every wait is bounded. Everything received is also handed to
// onMessage listeners as parsed, for tests and probes that look at the raw traffic.

import { invalidArgument } from '../errors';
import { ClientError, RpcResponseError } from './errors';
import { idKey, isReply, type IncomingMessage, type ReplyMessage, type RequestId, type ResultChunk } from './messages';
import { ResultStream, type StreamHost, type StreamOptions } from './result-stream';
import { describeClose, type ClientTransport, type CloseInfo } from './transport';

export const DEFAULT_TIMEOUT_MS = 30_000;

export interface RpcClientOptions {
  /**
   * The API key as the top-level "auth" member of every request and notification: how TCP and
   * UDP carry it (HTTP and WebSocket send it as a header: give it to their transport instead).
   */
  auth?: string;
  /** The bound on request(), call(), notify() and batch() when the call names none (default 30 s). */
  timeoutMs?: number;
  /** Ids are `${idPrefix}${n}`; without a prefix they are the numbers 1, 2, 3, ... */
  idPrefix?: string;
}

export interface CallOptions {
  /** Default: the client's next id. */
  id?: string | number;
  timeoutMs?: number;
  /** Aborting stops the wait and asks the server to cancel the request. */
  signal?: AbortSignal;
}

export interface BatchEntry {
  method: string;
  params?: unknown;
  id?: string | number;
  /** Sent without an id: carried out, never answered. */
  notification?: boolean;
}

export interface NotifyOptions {
  timeoutMs?: number;
  signal?: AbortSignal;
}

interface Waiter {
  readonly id: RequestId;
  readonly method: string;
  done: boolean;
  settle(reply: ReplyMessage): void;
  fail(error: Error): void;
}

export class RpcClient {
  readonly transport: ClientTransport;
  private readonly options: RpcClientOptions;
  private readonly defaultTimeoutMs: number;
  private readonly pending = new Map<string, Waiter>();
  private readonly streams = new Map<string, ResultStream>();
  private readonly messageListeners = new Set<(message: IncomingMessage) => void>();
  private readonly unparsableListeners = new Set<(text: string) => void>();
  private nextNumber = 0;

  constructor(transport: ClientTransport, options: RpcClientOptions = {}) {
    if (options.timeoutMs !== undefined) checkTimeout('timeoutMs', options.timeoutMs);
    this.transport = transport;
    this.options = options;
    this.defaultTimeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    transport.onText((text) => this.receive(text));
    transport.onClose((info) => this.failAll(info));
  }

  get closed(): boolean {
    return this.transport.closed;
  }

  /** A fresh id of this client's sequence. */
  nextId(): string | number {
    this.nextNumber += 1;
    return this.options.idPrefix === undefined ? this.nextNumber : `${this.options.idPrefix}${this.nextNumber}`;
  }

  /** The result of one request; an error reply throws RpcResponseError (code, message, data). */
  async request<T = unknown>(method: string, params?: unknown, options: CallOptions = {}): Promise<T> {
    const reply = await this.call(method, params, options);
    if ('error' in reply) throw new RpcResponseError(reply.error, reply.id, method);
    return reply.result as T;
  }

  /** The reply to one request as received, error replies included (they do not throw). */
  call(method: string, params?: unknown, options: CallOptions = {}): Promise<ReplyMessage> {
    try {
      checkMethod(method);
      const timeoutMs = this.timeoutOf(options.timeoutMs);
      const id = this.claimId(options.id);
      const text = JSON.stringify(this.envelope(method, params, id));
      return this.dispatch(text, [{ id, method }], { timeoutMs, signal: options.signal })[0];
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** A notification: carried out by the server, never answered. Resolves once it is sent. */
  notify(method: string, params?: unknown, options: NotifyOptions = {}): Promise<void> {
    try {
      checkMethod(method);
      const timeoutMs = this.timeoutOf(options.timeoutMs);
      return bounded(sendVia(this.transport, JSON.stringify(this.envelope(method, params))), timeoutMs, `${method} notification: not sent`, options.signal);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * One batch; resolves with the reply to each entry, in the entries' order (undefined for
   * notifications). The server answers a batch as one array, in any order: replies are matched
   * by id. Error replies are returned, not thrown.
   */
  async batch(entries: readonly BatchEntry[], options: NotifyOptions = {}): Promise<(ReplyMessage | undefined)[]> {
    if (!Array.isArray(entries) || entries.length === 0) throw invalidArgument('entries', 'must be a non-empty array (an empty batch is an invalid request)');
    const timeoutMs = this.timeoutOf(options.timeoutMs);
    entries.forEach((entry, index) => checkMethod(entry?.method, `entries[${index}].method`));
    const claimed: RequestId[] = [];
    const messages = entries.map((entry) => {
      if (entry.notification) return this.envelope(entry.method, entry.params);
      const id = this.claimId(entry.id, claimed);
      claimed.push(id);
      return this.envelope(entry.method, entry.params, id);
    });
    const requests = entries.flatMap((entry, index) => (entry.notification ? [] : [{ id: messages[index].id as RequestId, method: entry.method }]));
    const text = JSON.stringify(messages);
    if (requests.length === 0) {
      await bounded(sendVia(this.transport, text), timeoutMs, 'batch of notifications: not sent', options.signal);
      return entries.map(() => undefined);
    }
    const settled = await Promise.all(this.dispatch(text, requests, { timeoutMs, signal: options.signal }));
    let next = 0;
    return entries.map((entry) => (entry.notification ? undefined : settled[next++]));
  }

  /**
   * Sends the request and reads its stream: the rkllm_result notifications of this request, in
   * arrival order, ending after the last one (finished, failed or aborted). Use it for rkllm_run
   * with `stream: true` and for rkllm_run_async. Over plain HTTP the stream is read with `poll`.
   */
  stream(method: string, params?: unknown, options: StreamOptions = {}): ResultStream {
    checkMethod(method);
    const id = this.claimId(options.id);
    const key = idKey(id);
    const host: StreamHost = {
      pushes: this.transport.pushes,
      exchanges: this.transport.exchanges,
      // The stream asks for the cancel itself, by stream id once it knows it.
      send: (signal) => this.dispatch(JSON.stringify(this.envelope(method, params, id)), [{ id, method }], { signal, cancelOnAbort: false })[0],
      call: (pollMethod, pollParams, callOptions) => this.call(pollMethod, pollParams, callOptions),
      cancel: (cancelParams) => void this.notify('cancel', cancelParams).catch(() => undefined),
      forget: (stream) => {
        if (this.streams.get(key) === stream) this.streams.delete(key);
      },
    };
    const stream = new ResultStream(id, method, host, options);
    this.streams.set(key, stream);
    stream.start();
    return stream;
  }

  /** Sends one text as is, through the transport's framing: for tests and probes. */
  sendRaw(text: string): Promise<void> {
    return this.transport.send(text);
  }

  /** Every received message, batch members one by one, as parsed. */
  onMessage(listener: (message: IncomingMessage) => void): () => void {
    this.messageListeners.add(listener);
    return () => this.messageListeners.delete(listener);
  }

  /** Every received text that is not JSON, or JSON that is not a message object. */
  onUnparsable(listener: (text: string) => void): () => void {
    this.unparsableListeners.add(listener);
    return () => this.unparsableListeners.delete(listener);
  }

  onClose(listener: (info: CloseInfo) => void): () => void {
    return this.transport.onClose(listener);
  }

  /** Graceful close; what is still waiting fails with CLOSED. */
  close(): Promise<void> {
    return this.transport.close();
  }

  /** Abrupt close (a TCP reset, a WebSocket terminate, HTTP requests destroyed). */
  drop(): void {
    this.transport.drop();
  }

  private envelope(method: string, params: unknown, id?: RequestId): Record<string, unknown> {
    const message: Record<string, unknown> = { jsonrpc: '2.0' };
    if (id !== undefined) message.id = id;
    message.method = method;
    if (params !== undefined) message.params = params;
    if (this.options.auth !== undefined) message.auth = this.options.auth;
    return message;
  }

  private timeoutOf(timeoutMs: number | undefined): number {
    if (timeoutMs === undefined) return this.defaultTimeoutMs;
    checkTimeout('timeoutMs', timeoutMs);
    return timeoutMs;
  }

  private claimId(id: string | number | undefined, alsoTaken: readonly RequestId[] = []): RequestId {
    const taken = (candidate: RequestId): boolean => {
      const key = idKey(candidate);
      return this.pending.has(key) || this.streams.has(key) || alsoTaken.some((other) => idKey(other) === key);
    };
    if (id === undefined) {
      let next = this.nextId();
      while (taken(next)) next = this.nextId();
      return next;
    }
    if (!(typeof id === 'string' || (typeof id === 'number' && Number.isFinite(id)))) throw invalidArgument('id', 'must be a string or a finite number');
    if (taken(id)) throw invalidArgument('id', `${idKey(id)} is already waiting for its reply on this client`);
    return id;
  }

  /**
   * Sends one text carrying `requests` and waits for their replies: bounded by timeoutMs, cut
   * short by the signal or the transport's close. For HTTP, the exchange's end settles what it
   * did not answer, and an error status with a JSON-RPC error body is that error's reply.
   */
  private dispatch(
    text: string,
    requests: readonly { id: RequestId; method: string }[],
    options: { timeoutMs?: number; signal?: AbortSignal; cancelOnAbort?: boolean },
  ): Promise<ReplyMessage>[] {
    const { signal } = options;
    const exchange = this.transport.exchanges ? new AbortController() : undefined;
    const waiters: Waiter[] = [];
    const replies = requests.map(({ id, method }) => new Promise<ReplyMessage>((resolve, reject) => waiters.push(this.addWaiter(id, method, resolve, reject))));
    const open = (): Waiter[] => waiters.filter((waiter) => !waiter.done);
    const failOpen = (error: Error): void => open().forEach((waiter) => waiter.fail(error));

    let timer: NodeJS.Timeout | undefined;
    let sent = false;
    const onAbort = (): void => {
      const unanswered = open();
      const reason: unknown = signal?.reason;
      failOpen(reason instanceof Error && isClientErrorLike(reason) ? reason : new ClientError('ABORTED', `${describe(requests)}: aborted`, { cause: reason }));
      exchange?.abort();
      // Over a connection the server cancels by request id; an HTTP exchange ends when destroyed.
      if (sent && options.cancelOnAbort !== false && !this.transport.exchanges && !this.transport.closed) {
        for (const waiter of unanswered) void this.notify('cancel', { request_id: waiter.id }).catch(() => undefined);
      }
    };
    if (signal?.aborted) {
      queueMicrotask(onAbort);
    } else {
      signal?.addEventListener('abort', onAbort, { once: true });
      if (options.timeoutMs !== undefined) {
        const timeoutMs = options.timeoutMs;
        timer = setTimeout(() => {
          failOpen(new ClientError('TIMEOUT', `${describe(requests)} over ${this.transport.kind}: no reply within ${timeoutMs} ms`));
          exchange?.abort();
        }, timeoutMs);
      }
      sent = true;
      sendVia(this.transport, text, exchange?.signal).then(
        () => {
          if (this.transport.exchanges) failOpen(new ClientError('NO_REPLY', `${describe(requests)}: the HTTP response held no reply`));
        },
        (error: Error) => {
          const body = replyInBody(error);
          for (const waiter of open()) {
            if (body) waiter.settle(body);
            else waiter.fail(error);
          }
        },
      );
    }
    void Promise.allSettled(replies).then(() => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    });
    return replies;
  }

  private addWaiter(id: RequestId, method: string, resolve: (reply: ReplyMessage) => void, reject: (error: Error) => void): Waiter {
    const key = idKey(id);
    const waiter: Waiter = {
      id,
      method,
      done: false,
      settle: (reply) => {
        if (waiter.done) return;
        waiter.done = true;
        if (this.pending.get(key) === waiter) this.pending.delete(key);
        resolve(reply);
      },
      fail: (error) => {
        if (waiter.done) return;
        waiter.done = true;
        if (this.pending.get(key) === waiter) this.pending.delete(key);
        reject(error);
      },
    };
    this.pending.set(key, waiter);
    return waiter;
  }

  private receive(text: string): void {
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      this.tellUnparsable(text);
      return;
    }
    for (const item of Array.isArray(value) ? value : [value]) {
      if (typeof item !== 'object' || item === null || Array.isArray(item)) {
        this.tellUnparsable(JSON.stringify(item));
        continue;
      }
      const message = item as IncomingMessage;
      for (const listener of [...this.messageListeners]) callSafely(listener, message);
      this.route(message);
    }
  }

  private route(message: IncomingMessage): void {
    if (message.method === 'rkllm_result') {
      const chunk = message.params as ResultChunk | undefined;
      if (typeof chunk === 'object' && chunk !== null && 'request_id' in chunk) this.streams.get(idKey(chunk.request_id))?.push(chunk);
    } else if (isReply(message) && message.id !== null) {
      this.pending.get(idKey(message.id))?.settle(message);
    }
  }

  private tellUnparsable(text: string): void {
    for (const listener of [...this.unparsableListeners]) callSafely(listener, text);
  }

  private failAll(info: CloseInfo): void {
    const error = new ClientError('CLOSED', `${this.transport.kind}: the transport closed${describeClose(info)}`);
    for (const waiter of [...this.pending.values()]) waiter.fail(error);
    for (const stream of [...this.streams.values()]) stream.fail(error);
  }
}

function checkMethod(method: unknown, field = 'method'): asserts method is string {
  if (typeof method !== 'string' || method === '') throw invalidArgument(field, 'must be a non-empty string');
}

function checkTimeout(field: string, value: number): void {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) throw invalidArgument(field, 'must be a positive number of milliseconds');
}

function describe(requests: readonly { id: RequestId; method: string }[]): string {
  const [first] = requests;
  return requests.length === 1 ? `${first.method} (id ${idKey(first.id)})` : `a batch of ${requests.length} requests`;
}

function isClientErrorLike(error: Error): boolean {
  return error instanceof ClientError || error instanceof RpcResponseError;
}

/** An HTTP error status whose body is a JSON-RPC error reply (401, 413, 503 on this server). */
function replyInBody(error: Error): ReplyMessage | undefined {
  if (!(error instanceof ClientError) || error.code !== 'HTTP_STATUS' || error.body === undefined) return undefined;
  try {
    const value = JSON.parse(error.body) as unknown;
    if (typeof value === 'object' && value !== null && !Array.isArray(value) && isReply(value as IncomingMessage)) return value as ReplyMessage;
  } catch {
    // not JSON: the HTTP_STATUS error stands
  }
  return undefined;
}

/** A send bounded in time and by a signal. */
function bounded(sending: Promise<void>, timeoutMs: number, what: string, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const onAbort = (): void => finish(new ClientError('ABORTED', `${what}: aborted`, { cause: signal?.reason }));
    const timer = setTimeout(() => finish(new ClientError('TIMEOUT', `${what} within ${timeoutMs} ms`)), timeoutMs);
    const finish = (error?: Error): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      if (error) reject(error);
      else resolve();
    };
    if (signal?.aborted) return onAbort();
    signal?.addEventListener('abort', onAbort, { once: true });
    sending.then(() => finish(), finish);
  });
}

/** A transport that throws instead of rejecting still fails only the call. */
function sendVia(transport: ClientTransport, text: string, signal?: AbortSignal): Promise<void> {
  try {
    return transport.send(text, signal === undefined ? undefined : { signal });
  } catch (error) {
    return Promise.reject(error);
  }
}

/** One listener's bug must not cost the others their messages: it is rethrown on its own. */
function callSafely<T>(listener: (value: T) => void, value: T): void {
  try {
    listener(value);
  } catch (error) {
    queueMicrotask(() => {
      throw error;
    });
  }
}
