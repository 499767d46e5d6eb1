// The JSON-RPC 2.0 engine: one received text in, replies out through the connection. It checks
// size, JSON and envelope, finds the method in the table, validates its params against the
// method's schema, calls the handler and answers (never for a notification). A batch is answered
// with one array once all its members are. Nothing a client sends can make it throw.

import type { Logger } from 'pino';
import type { MethodContext, MethodEntry } from '../methods';
import type { ServerCore } from '../server/core';
import type { Connection } from './connection';
import { failure, isErrorResponse, readEnvelope, success, type RpcRequest, type Response } from './envelope';
import { INTERNAL_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, PARSE_ERROR, RpcError, invalidParams, serverError } from './errors';
import { toRpcError } from './map-error';
import { apiKeyMatches, keyInMessage } from '../server/auth';

type Reply = Response | undefined;
type MaybePromise<T> = T | Promise<T>;

const SETTLED: Promise<void> = Promise.resolve();
const NO_HOLD = (): void => undefined;

function isPromiseLike(value: unknown): value is PromiseLike<unknown> {
  return typeof value === 'object' && value !== null && typeof (value as PromiseLike<unknown>).then === 'function';
}

/** "/param/extend_param/n_batch" → "param.extend_param.n_batch"; "/token_input/3" → "token_input[3]". */
function fieldOf(pointer: string): string {
  if (pointer === '') return 'params';
  let field = '';
  for (const raw of pointer.slice(1).split('/')) {
    const segment = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (/^\d+$/.test(segment)) field += `[${segment}]`;
    else field += field === '' ? segment : `.${segment}`;
  }
  return field;
}

export class RpcEngine {
  readonly #table: ReadonlyMap<string, MethodEntry>;
  readonly #core: ServerCore;
  readonly #logger: Logger;
  readonly #maxBytes: number;
  readonly #debug: boolean;

  constructor(table: ReadonlyMap<string, MethodEntry>, core: ServerCore) {
    this.#table = table;
    this.#core = core;
    this.#logger = core.logger;
    this.#maxBytes = core.config.maxMessageBytes;
    this.#debug = core.logger.isLevelEnabled('debug');
  }

  handleMessage(connection: Connection, text: string): Promise<void> {
    try {
      if (this.#tooLarge(text)) {
        this.#send(connection, failure(null, serverError('MESSAGE_TOO_LARGE', `the limit is ${this.#maxBytes} bytes`, { limit: this.#maxBytes })));
        return SETTLED;
      }
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch {
        this.#send(connection, failure(null, new RpcError(PARSE_ERROR, 'Parse error', { reason: 'the message is not valid JSON' })));
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
    const request = readEnvelope(value);
    if (isErrorResponse(request)) return request;
    const apiKey = this.#core.config.apiKey;
    // HTTP and WebSocket checked the key on the request or upgrade; TCP and UDP carry it here.
    if (apiKey !== undefined && keyInMessage(connection.transport) && !apiKeyMatches(apiKey, (value as { auth?: unknown }).auth)) {
      return this.#fail(request, serverError('UNAUTHORIZED', 'send the API key as "auth" at the top level of every request'));
    }
    const entry = this.#table.get(request.method);
    if (entry === undefined) {
      return this.#fail(request, new RpcError(METHOD_NOT_FOUND, 'Method not found', { method: request.method }));
    }
    let params = request.params;
    if (params === undefined || (Array.isArray(params) && params.length === 0)) params = {};
    else if (Array.isArray(params)) return this.#fail(request, invalidParams('params', 'expected named params (an object), not an array'));
    if (!entry.validator.Check(params)) {
      const first = entry.validator.Errors(params).First();
      return this.#fail(request, invalidParams(first ? fieldOf(first.path) : 'params', first?.message ?? 'invalid'));
    }
    if (this.#core.shuttingDown && !entry.cheap) return this.#fail(request, serverError('SHUTTING_DOWN'));
    if (this.#debug) this.#logger.debug({ connection: connection.id, id: request.id, method: request.method }, 'request');

    const context: MethodContext = {
      core: this.#core,
      connection,
      requestId: request.isNotification ? undefined : request.id,
      holdUntil: holds ? (ended) => holds.push(ended) : NO_HOLD,
    };
    let result: unknown;
    try {
      result = entry.handler(params, context);
    } catch (error) {
      return this.#fail(request, error);
    }
    if (isPromiseLike(result)) {
      return Promise.resolve(result).then(
        (value) => (request.isNotification ? undefined : success(request.id ?? null, value)),
        (error: unknown) => this.#fail(request, error),
      );
    }
    return request.isNotification ? undefined : success(request.id ?? null, result);
  }

  #fail(request: RpcRequest, error: unknown): Reply {
    const rpcError = toRpcError(error);
    if (rpcError.code === INTERNAL_ERROR) {
      this.#logger.error({ err: error, method: request.method }, 'internal error in a method handler');
    }
    return request.isNotification ? undefined : failure(request.id ?? null, rpcError);
  }

  #send(connection: Connection, message: Response | Record<string, unknown>[]): void {
    this.#core.deliver(connection, message as unknown as Record<string, unknown>);
  }

  #tooLarge(text: string): boolean {
    // UTF-16 length bounds the UTF-8 size from below and (times three) from above.
    if (text.length > this.#maxBytes) return true;
    if (text.length * 3 <= this.#maxBytes) return false;
    return Buffer.byteLength(text, 'utf8') > this.#maxBytes;
  }

  #waitFor(holds: Promise<void>[]): Promise<void> {
    return Promise.all(holds).then(() => undefined, this.#swallow);
  }

  readonly #swallow = (error: unknown): void => {
    this.#logger.error({ err: error }, 'unexpected failure while answering a message');
  };
}
