// The seam between a message front end (the JSON-RPC engine) and the transports
// (lib/transports). The engine knows no sockets: a transport wraps each peer in a Connection,
// hands every received message to MessageHandler.handleMessage, and tells it when the peer is
// gone. Everything the engine says to a peer goes through Connection.send (or sendAll).

export const TRANSPORT_NAMES = ['stdio', 'tcp', 'udp', 'http', 'websocket'] as const;
export type TransportName = (typeof TRANSPORT_NAMES)[number];

/**
 * A message whose JSON text the sender wrote itself (the token notifications: one template per
 * stream, so no object per token is built and stringified). A transport sends `text` as it is;
 * anything else that serialises it with JSON.stringify gets the same JSON through toJSON.
 */
export class SerializedMessage {
  readonly text: string;

  constructor(text: string) {
    this.text = text;
  }

  toJSON(): unknown {
    return JSON.parse(this.text) as unknown;
  }
}

/** A JSON-RPC message or batch, serialisable with JSON.stringify, or one already serialised. */
export type OutgoingMessage = Record<string, unknown> | Record<string, unknown>[] | SerializedMessage;

export interface Connection {
  /** Unique for the life of the process, e.g. "tcp#12 127.0.0.1:53122". */
  readonly id: string;
  /** 'memory' is for tests that drive the engine without a socket. */
  readonly transport: TransportName | 'memory';
  /**
   * True when the engine may push notifications (stream chunks) to this peer at any time.
   * False for a plain HTTP request: its streams are buffered for `poll` instead.
   */
  readonly canPush: boolean;
  /**
   * Set by HTTP with `Accept: text/event-stream`: handleMessage then settles only after every
   * stream the message started has sent its last notification (rkllm_run_async included), so
   * the transport can end the event stream there.
   */
  readonly holdUntilStreamsEnd?: boolean;
  /**
   * Sends one message (a response, a batch of responses, or a notification). Returns false when
   * the message could not be queued: the peer is gone, or it stopped reading and the transport
   * cut it off (the transport then also reports the connection closed).
   *
   * What a transport promises the engine here, so that no peer can make the server hold more
   * than the transport's bound for it (maxBufferedBytesPerConnection):
   * - the bytes the peer has not taken yet plus the new ones are checked before every write; a
   *   peer past the bound is cut off;
   * - a batch reply (an array) is serialised and written member by member as the peer takes
   *   them, never built as one string;
   * - a response larger than the bound on its own is replaced by a MESSAGE_TOO_LARGE error to
   *   its id (TransportHandler.refusal), so the client still gets one answer.
   */
  send(message: OutgoingMessage): boolean;
  /**
   * Sends several messages in one write (one burst of lines, events or frames), each still its
   * own message on the wire: how a batch of tokens leaves the server. Same result as send().
   * Optional: without it, each message goes through send().
   */
  sendAll?(messages: readonly OutgoingMessage[]): boolean;
}

/** sendAll where the connection has it, else one send() per message. */
export function sendAll(connection: Connection, messages: readonly OutgoingMessage[]): boolean {
  if (connection.sendAll) return connection.sendAll(messages);
  for (const message of messages) if (!connection.send(message)) return false;
  return true;
}

export interface MessageHandler {
  /**
   * One received message: a line (stdio, TCP), a datagram (UDP), a body (HTTP) or a text frame
   * (WebSocket). Every reply goes through connection.send; the returned promise settles once
   * the direct reply to this message has been sent (or immediately for notifications), which
   * is when an HTTP transport may end a non-streaming response. It never rejects.
   */
  handleMessage(connection: Connection, text: string): Promise<void>;
  /** The peer is gone: cancel its queued and running requests and free what it held. */
  connectionClosed(connection: Connection): void;
}
