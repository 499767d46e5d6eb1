// A JSON-RPC 2.0 engine: one received text in, replies out through the connection. It checks
// size, JSON and envelope, finds the method in the table, bounds the params' nesting, validates
// them against the method's schema, calls the handler and answers (never for a notification). A
// batch (at most maxBatchLength members) is answered with one array once all its members are; the
// transport writes that array member by member (lib/rpc/connection.ts). Nothing a client sends
// can make it throw. It knows no method and no server: the front end gives it its table, its
// context and its error mapping.

import type { Logger } from 'pino';
import type { Connection, OutgoingMessage } from './connection';
import type { MethodEntry } from './define';
import { MAX_NESTING_DEPTH, pathTooDeep } from './depth';
import { failure, isErrorResponse, readEnvelope, success, type RequestId, type RpcRequest, type Response } from './envelope';
import { INTERNAL_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, PARSE_ERROR, RpcError, invalidParams } from './errors';

type Reply = Response | undefined;
type MaybePromise<T> = T | Promise<T>;

/** What a handler's context is built from, besides the connection. */
export interface CallInfo {
  /** The request's id; undefined for a notification. */
  readonly requestId: RequestId | undefined;
  /** HTTP event streams: the reply to this message waits until `ended` settles. */
  holdUntil(ended: Promise<void>): void;
}

/** One request as it ended, for a front end's request records (RpcEngineOptions.observe). */
export interface EndedCall<C> {
  /** The method it named; undefined when the message was no request (not JSON, no method). */
  method: string | undefined;
  /** Whether the table has that method, and whether it is a cheap one. */
  known: boolean;
  cheap: boolean;
  /** The params as validated; undefined when the call was refused before. */
  params: unknown;
  /** The handler's context; undefined when the call was refused before the handler ran. */
  context: C | undefined;
  /** performance.now() when the engine took the message up. */
  readonly startedAt: number;
  /** What the call failed with: the handler's error as thrown, or the engine's own RpcError. */
  error: unknown;
  /** The handler's result, when it succeeded. */
  result: unknown;
}

export interface RpcEngineOptions<C> {
  readonly table: ReadonlyMap<string, MethodEntry<C>>;
  readonly logger: Logger;
  /** The largest message accepted, in UTF-8 bytes. */
  readonly maxMessageBytes: number;
  /** The handler's context for one call. */
  context(connection: Connection, call: CallInfo): C;
  /** Anything a handler threw, as the error its client is sent (INTERNAL_ERROR for the unknown). */
  toRpcError(error: unknown): RpcError;
  /** The reply to a message over maxMessageBytes. */
  tooLarge(limit: number): RpcError;
  /** The most members a batch may have; a longer one is refused whole, unread. */
  readonly maxBatchLength: number;
  /** The reply to a batch of more than maxBatchLength members. */
  batchTooLong(limit: number, length: number): RpcError;
  /** How deep params may nest (arrays and objects; params itself is level 1); default MAX_NESTING_DEPTH. */
  readonly maxParamsDepth?: number;
  /** Checked first, on every well-formed request: an error refuses it (an API key). */
  authorize?(connection: Connection, message: Readonly<Record<string, unknown>>): RpcError | undefined;
  /** Checked once the params are valid, before the handler runs: an error refuses it (shutdown). */
  admit?(entry: MethodEntry<C>): RpcError | undefined;
  /** Sends one reply (a response or the array of a batch). */
  send(connection: Connection, message: OutgoingMessage): void;
  /** Told of every request once its reply is settled (notifications too); must not throw. */
  observe?(connection: Connection, call: EndedCall<C>): void;
}

const SETTLED: Promise<void> = Promise.resolve();
const NO_HOLD = (): void => undefined;

function isPromiseLike(value: unknown): value is PromiseLike<unknown> {
  return typeof value === 'object' && value !== null && typeof (value as PromiseLike<unknown>).then === 'function';
}

/** "/param/extend_param/n_batch" → "param.extend_param.n_batch"; "/token_input/3" → "token_input[3]". */
function fieldOf(pointer: string): string {
  if (pointer === '') return 'params';
  return fieldOfPath(pointer.slice(1).split('/').map((raw) => raw.replace(/~1/g, '/').replace(/~0/g, '~')));
}

/** ["tools", 0, "function"] → "tools[0].function". */
function fieldOfPath(segments: readonly (string | number)[]): string {
  let field = '';
  for (const segment of segments) {
    if (typeof segment === 'number' || /^\d+$/.test(segment)) field += `[${segment}]`;
    else field += field === '' ? segment : `.${segment}`;
  }
  return field === '' ? 'params' : field;
}

export class RpcEngine<C> {
  readonly #options: RpcEngineOptions<C>;
  readonly #debug: boolean;

  constructor(options: RpcEngineOptions<C>) {
    this.#options = options;
    this.#debug = options.logger.isLevelEnabled('debug');
  }

  handleMessage(connection: Connection, text: string): Promise<void> {
    try {
      if (this.#tooLarge(text)) {
        const tooLarge = this.#options.tooLarge(this.#options.maxMessageBytes);
        this.#observeRefusal(connection, tooLarge);
        this.#send(connection, failure(null, tooLarge));
        return SETTLED;
      }
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch {
        const parseError = new RpcError(PARSE_ERROR, 'Parse error', { reason: 'the message is not valid JSON' });
        this.#observeRefusal(connection, parseError);
        this.#send(connection, failure(null, parseError));
        return SETTLED;
      }
      const holds: Promise<void>[] | undefined = connection.holdUntilStreamsEnd ? [] : undefined;
      if (Array.isArray(value)) return this.#batch(connection, value, holds);
      const reply = this.#call(connection, value, holds);
      if (!isPromiseLike(reply)) {
        if (reply) this.#send(connection, reply);
        return holds && holds.length > 0 ? this.#waitFor(holds) : SETTLED;
      }
      return reply.then((settled) => {
        if (settled) this.#send(connection, settled);
        return holds && holds.length > 0 ? this.#waitFor(holds) : undefined;
      }, this.#swallow);
    } catch (error) {
      this.#swallow(error);
      return SETTLED;
    }
  }

  #batch(connection: Connection, members: unknown[], holds: Promise<void>[] | undefined): Promise<void> {
    if (members.length === 0) {
      this.#send(connection, failure(null, new RpcError(INVALID_REQUEST, 'Invalid Request', { reason: 'an empty batch' })));
      return SETTLED;
    }
    // Refused before any member runs: its replies would be built, held and written for nothing.
    if (members.length > this.#options.maxBatchLength) {
      this.#send(connection, failure(null, this.#options.batchTooLong(this.#options.maxBatchLength, members.length)));
      return SETTLED;
    }
    const replies = members.map((member) => this.#call(connection, member, holds));
    return Promise.all(replies).then((settled) => {
      const responses = settled.filter((reply): reply is Response => reply !== undefined);
      // A batch of notifications only gets no reply at all.
      if (responses.length > 0) this.#send(connection, responses as unknown as Record<string, unknown>[]);
      return holds && holds.length > 0 ? this.#waitFor(holds) : undefined;
    }, this.#swallow);
  }

  /** One request: its reply (undefined for a notification), now or later. Never throws. */
  #call(connection: Connection, value: unknown, holds: Promise<void>[] | undefined): MaybePromise<Reply> {
    if (this.#options.observe === undefined) return this.#answer(connection, value, holds, undefined);
    const call: EndedCall<C> = { method: undefined, known: false, cheap: false, params: undefined, context: undefined, startedAt: performance.now(), error: undefined, result: undefined };
    const reply = this.#answer(connection, value, holds, call);
    if (!isPromiseLike(reply)) {
      this.#observe(connection, call);
      return reply;
    }
    return reply.then((settled) => {
      this.#observe(connection, call);
      return settled;
    });
  }

  #answer(connection: Connection, value: unknown, holds: Promise<void>[] | undefined, call: EndedCall<C> | undefined): MaybePromise<Reply> {
    const request = readEnvelope(value);
    if (isErrorResponse(request)) {
      if (call) call.error = new RpcError(INVALID_REQUEST, 'Invalid Request', request.error.data);
      return request;
    }
    if (call) call.method = request.method;
    const options = this.#options;
    const unauthorized = options.authorize?.(connection, value as Record<string, unknown>);
    if (unauthorized) return this.#fail(request, unauthorized, call);
    const entry = options.table.get(request.method);
    if (entry === undefined) {
      return this.#fail(request, new RpcError(METHOD_NOT_FOUND, 'Method not found', { method: request.method }), call);
    }
    if (call) {
      call.known = true;
      call.cheap = entry.cheap;
    }
    let params = request.params;
    if (params === undefined || (Array.isArray(params) && params.length === 0)) params = {};
    else if (Array.isArray(params)) return this.#fail(request, invalidParams('params', 'expected named params (an object), not an array'), call);
    // Handlers may serialise what they are given (tools): a depth JSON.stringify cannot take is the client's mistake.
    const maxDepth = options.maxParamsDepth ?? MAX_NESTING_DEPTH;
    const tooDeep = pathTooDeep(params, maxDepth);
    if (tooDeep !== undefined) {
      return this.#fail(request, invalidParams(fieldOfPath(tooDeep), `nested deeper than ${maxDepth} levels of arrays and objects`), call);
    }
    if (entry.prepare) params = entry.prepare(params);
    if (!entry.validator.Check(params)) {
      const first = entry.validator.Errors(params).First();
      return this.#fail(request, invalidParams(first ? fieldOf(first.path) : 'params', first?.message ?? 'invalid'), call);
    }
    if (call) call.params = params;
    const refused = options.admit?.(entry);
    if (refused) return this.#fail(request, refused, call);
    if (this.#debug) options.logger.debug({ connection: connection.id, id: request.id, method: request.method }, 'request');

    const context = options.context(connection, {
      requestId: request.isNotification ? undefined : request.id,
      holdUntil: holds ? (ended) => holds.push(ended) : NO_HOLD,
    });
    if (call) call.context = context;
    let result: unknown;
    try {
      result = entry.handler(params, context);
    } catch (error) {
      return this.#fail(request, error, call);
    }
    if (isPromiseLike(result)) {
      return Promise.resolve(result).then(
        (value) => {
          if (call) call.result = value;
          return request.isNotification ? undefined : success(request.id ?? null, value);
        },
        (error: unknown) => this.#fail(request, error, call),
      );
    }
    if (call) call.result = result;
    return request.isNotification ? undefined : success(request.id ?? null, result);
  }

  #observe(connection: Connection, call: EndedCall<C>): void {
    try {
      this.#options.observe?.(connection, call);
    } catch (error) {
      this.#swallow(error);
    }
  }

  /** A message refused whole before any request in it was read (too large, not JSON). */
  #observeRefusal(connection: Connection, error: RpcError): void {
    if (this.#options.observe === undefined) return;
    this.#observe(connection, { method: undefined, known: false, cheap: false, params: undefined, context: undefined, startedAt: performance.now(), error, result: undefined });
  }

  #fail(request: RpcRequest, error: unknown, call?: EndedCall<C>): Reply {
    if (call) call.error = error;
    const rpcError = error instanceof RpcError ? error : this.#options.toRpcError(error);
    if (rpcError.code === INTERNAL_ERROR) {
      this.#options.logger.error({ err: error, method: request.method }, 'internal error in a method handler');
    }
    return request.isNotification ? undefined : failure(request.id ?? null, rpcError);
  }

  #send(connection: Connection, message: Response | Record<string, unknown>[]): void {
    this.#options.send(connection, message as unknown as OutgoingMessage);
  }

  #tooLarge(text: string): boolean {
    const limit = this.#options.maxMessageBytes;
    // UTF-16 length bounds the UTF-8 size from below and (times three) from above.
    if (text.length > limit) return true;
    if (text.length * 3 <= limit) return false;
    return Buffer.byteLength(text, 'utf8') > limit;
  }

  #waitFor(holds: Promise<void>[]): Promise<void> {
    return Promise.all(holds).then(() => undefined, this.#swallow);
  }

  readonly #swallow = (error: unknown): void => {
    this.#options.logger.error({ err: error }, 'unexpected failure while answering a message');
  };
}
