// The JSON-RPC front end: what the transports hand messages to. It runs the generic engine
// (lib/rpc) on this server's method table, keeps one core session per connection, turns a
// stream's chunks into rkllm_result notifications (a batch of tokens leaves as one write), and
// maps the domain error to JSON-RPC errors in one table (error-table.ts).

import type { Logger } from 'pino';
import type { ApiKey } from '../auth';
import type { ChatSettingsSource } from '../core/chat-model';
import type { ServerCore } from '../core/core';
import type { StreamSink } from '../core/sessions';
import type { Stream, StreamChunk } from '../core/stream';
import { RkllmError } from '../errors';
import { SerializedMessage, sendAll, type Connection, type MessageHandler, type OutgoingMessage } from '../rpc/connection';
import { describeMethods } from '../rpc/define';
import { RpcEngine } from '../rpc/engine';
import { failure, type RequestId } from '../rpc/envelope';
import type { DropProbe, MethodContext } from './context';
import { serverError, toRpcError } from './error-table';
import { recordCall } from './records';
import { streamErrorJson } from './runs';
import { buildMethodTable } from './table';

export interface JsonRpcFrontEndOptions {
  readonly core: ServerCore;
  readonly logger: Logger;
  readonly maxMessageBytes: number;
  /** The most members a batch may have. */
  readonly maxBatchLength: number;
  readonly enableTestHooks: boolean;
  /** Checked on TCP and UDP requests, whose key travels as an "auth" member. */
  readonly apiKey: ApiKey;
  readonly dropProbe?: DropProbe;
  /** Each model's chat settings, the same the OpenAI and Ollama front ends get (absent: none). */
  readonly chatSettings?: ChatSettingsSource;
}

/** The transports whose JSON-RPC requests carry the key in the message itself. */
function keyInMessage(transport: string): boolean {
  return transport === 'tcp' || transport === 'udp';
}

export class JsonRpcFrontEnd implements MessageHandler {
  readonly #core: ServerCore;
  readonly #logger: Logger;
  readonly #engine: RpcEngine<MethodContext>;
  readonly #sinks = new WeakMap<Connection, StreamSink>();
  /** Per stream, the JSON every one of its token notifications starts with. */
  readonly #heads = new WeakMap<Stream, string>();

  constructor(options: JsonRpcFrontEndOptions) {
    const { core, logger, apiKey } = options;
    this.#core = core;
    this.#logger = logger;
    const table = buildMethodTable({ enableTestHooks: options.enableTestHooks });
    const functionList = describeMethods(table);
    const chatSettings = options.chatSettings ?? (() => ({}));
    this.#engine = new RpcEngine<MethodContext>({
      table,
      logger,
      maxMessageBytes: options.maxMessageBytes,
      context: (connection, call) => ({
        core,
        connection,
        requestId: call.requestId,
        holdUntil: call.holdUntil,
        session: () => core.sessions.open(connection, this.#sinkFor(connection)),
        functionList,
        chatSettings,
        dropProbe: options.dropProbe,
        notes: {},
      }),
      observe: (connection, call) => recordCall(core, connection, call),
      toRpcError,
      tooLarge: (limit) => serverError('MESSAGE_TOO_LARGE', `the limit is ${limit} bytes`, { limit }),
      maxBatchLength: options.maxBatchLength,
      batchTooLong: (limit, length) =>
        serverError('MESSAGE_TOO_LARGE', `a batch of ${length} requests; the limit is ${limit} (--max-batch-length)`, { max_batch_length: limit }),
      authorize: (connection, message) =>
        apiKey.required && keyInMessage(connection.transport) && !apiKey.admits(message.auth)
          ? serverError('UNAUTHORIZED', 'send the API key as "auth" at the top level of every request')
          : undefined,
      admit: (entry) => (core.shuttingDown && !entry.cheap ? serverError('SHUTTING_DOWN', 'the server is shutting down and takes no new requests') : undefined),
      send: (connection, message) => void this.#deliver(connection, [message]),
    });
  }

  handleMessage(connection: Connection, text: string): Promise<void> {
    return this.#engine.handleMessage(connection, text);
  }

  /** The peer is gone: its requests are cancelled and its streams freed. */
  connectionClosed(connection: Connection): void {
    this.#core.closeSession(connection);
  }

  /** Whether the core holds requests or streams for this connection. */
  holdsWorkFor(connection: Connection): boolean {
    const session = this.#core.sessions.find(connection);
    return session !== undefined && !session.idle;
  }

  /** The reply a transport sends for a message it refuses itself (too large, too many peers, ...). */
  refusal(error: RkllmError, id: RequestId = null): OutgoingMessage {
    return { ...failure(id, toRpcError(error)) };
  }

  /** Sends unless the peer is known to be gone; a refused send closes the connection. */
  #deliver(connection: Connection, messages: readonly OutgoingMessage[]): boolean {
    if (this.#core.sessions.isClosed(connection)) return false;
    let sent: boolean;
    try {
      sent = sendAll(connection, messages);
    } catch (error) {
      this.#logger.warn({ connection: connection.id, err: error }, 'send threw; treating the connection as closed');
      sent = false;
    }
    if (!sent) this.#core.closeSession(connection);
    return sent;
  }

  #sinkFor(connection: Connection): StreamSink {
    let sink = this.#sinks.get(connection);
    if (!sink) {
      sink = { push: (stream, chunks) => void this.#deliver(connection, this.#notifications(stream, chunks)) };
      this.#sinks.set(connection, sink);
    }
    return sink;
  }

  /** One rkllm_result notification per chunk, each with its seq (docs/protocol.md). */
  #notifications(stream: Stream, chunks: readonly StreamChunk[]): OutgoingMessage[] {
    const messages: OutgoingMessage[] = new Array<OutgoingMessage>(chunks.length);
    for (let index = 0; index < chunks.length; index++) {
      const chunk = chunks[index];
      messages[index] = isPlainToken(chunk) ? this.#tokenNotification(stream, chunk) : resultNotification(stream, chunk);
    }
    return messages;
  }

  /**
   * A token's notification written from a template: the same JSON as resultNotification (same
   * members, same order), without an object per token to build and stringify on the hot path.
   */
  #tokenNotification(stream: Stream, chunk: StreamChunk): SerializedMessage {
    let head = this.#heads.get(stream);
    if (head === undefined) {
      head = `{"jsonrpc":"2.0","method":"rkllm_result","params":{"stream_id":${JSON.stringify(stream.id)},"request_id":${JSON.stringify(stream.requestId)},"seq":`;
      this.#heads.set(stream, head);
    }
    const stamp = chunk.callback_us === undefined ? '' : `,"callback_us":${JSON.stringify(chunk.callback_us)}`;
    return new SerializedMessage(`${head}${chunk.seq},"state":${chunk.state},"text":${JSON.stringify(chunk.text)},"token_id":${chunk.token_id}${stamp}}}`);
  }
}

/** A token in the middle of a stream: nothing but seq, state, text, token_id (and callback_us). */
function isPlainToken(chunk: StreamChunk): boolean {
  return chunk.perf === undefined && chunk.error === undefined && chunk.aborted === undefined && chunk.reason === undefined;
}

function resultNotification(stream: Stream, chunk: StreamChunk): OutgoingMessage {
  const params =
    chunk.error === undefined
      ? { stream_id: stream.id, request_id: stream.requestId, ...chunk }
      : { stream_id: stream.id, request_id: stream.requestId, ...chunk, error: streamErrorJson(stream, chunk.error) };
  return { jsonrpc: '2.0', method: 'rkllm_result', params };
}
