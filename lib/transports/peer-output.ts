// What a peer's messages go through on their way to its socket (stdio, TCP, HTTP, WebSocket),
// so that a peer that stops reading can never make the server hold more than its bound:
// - before every write, the bytes the peer has not taken yet plus the new ones are checked
//   against the bound (maxBufferedBytesPerConnection); past it the peer is cut off;
// - a batch reply leaves member by member, each serialised only when the socket has taken the
//   one before (its 'drain'), so no reply is ever built as one string. Messages sent meanwhile
//   wait behind it (framing must not interleave) and count against the bound; the peer's input is
//   paused while output waits, so it cannot queue more work than it reads;
// - a response larger than the bound by itself is replaced by a MESSAGE_TOO_LARGE error to its id;
// - a peer that takes nothing for OUTPUT_STALL_MS while a reply waits is cut off.

import { SerializedMessage, type OutgoingMessage } from '../rpc/connection';
import type { RequestId } from '../rpc/envelope';
import { isRequestId, isResponse, serialize } from './replies';

/** A peer that takes none of a waiting reply for this long is cut off. */
export const OUTPUT_STALL_MS = 30_000;

/** The transport's side: its framing and its socket. */
export interface OutputSink {
  /** Bytes written to the peer and not yet taken by it. */
  buffered(): number;
  /** Writes whole messages (serialised), in order, as one burst (one write or one cork). */
  writeMessages(texts: readonly string[]): void;
  /**
   * Writes one piece of a message that leaves in pieces (a batch reply); `first` and `last`
   * mark its ends, so the sink can frame it. Returns false when the socket wants a 'drain'.
   */
  writePiece(text: string, first: boolean, last: boolean): boolean;
  /** Calls back once, when the socket has drained or closed; returns what cancels that. */
  onceDrained(callback: () => void): () => void;
}

/** For a sink's onceDrained: calls back once the stream drains or closes (at once when it is gone). */
export function onceDrainedOrClosed(stream: NodeJS.EventEmitter & { readonly destroyed: boolean }, callback: () => void): () => void {
  if (stream.destroyed) {
    process.nextTick(callback);
    return () => undefined;
  }
  stream.once('drain', callback);
  stream.once('close', callback);
  return () => {
    stream.off('drain', callback);
    stream.off('close', callback);
  };
}

export interface PeerOutputOptions {
  readonly sink: OutputSink;
  /** maxBufferedBytesPerConnection. */
  readonly limitBytes: number;
  /** The error that takes the place of a response too large to send, for its id. */
  readonly tooLarge: (id: RequestId, bytes: number, limitBytes: number) => OutgoingMessage;
  /** The peer is not reading: the transport closes it (its requests are then cancelled). */
  readonly cutOff: (why: string) => void;
  /** Output is waiting on the socket (true) or has all gone out (false): pause or resume input. */
  readonly backpressure?: (waiting: boolean) => void;
}

type Item =
  | { readonly kind: 'messages'; readonly texts: readonly string[]; readonly bytes: number }
  | { readonly kind: 'batch'; readonly members: readonly OutgoingMessage[]; next: number }
  | { readonly kind: 'end'; readonly then: () => void };

export class PeerOutput {
  readonly #options: PeerOutputOptions;
  readonly #queue: Item[] = [];
  /** Bytes of the whole messages waiting in the queue. */
  #queuedBytes = 0;
  #waiting = false;
  /** What the transport was last told through backpressure(). */
  #inputPaused = false;
  #cancelDrain: (() => void) | undefined;
  #stallTimer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(options: PeerOutputOptions) {
    this.#options = options;
  }

  /** Bytes not yet taken by the peer: written and waiting on the socket, or queued here. */
  get pendingBytes(): number {
    return this.#closed ? 0 : this.#options.sink.buffered() + this.#queuedBytes;
  }

  /** Nothing is queued here, so no reply is part-way out: a byte written now falls between messages. */
  get idle(): boolean {
    return this.#queue.length === 0;
  }

  /** Sends messages in order; false when the output is closed or the peer was cut off by this. */
  send(messages: readonly OutgoingMessage[]): boolean {
    if (this.#closed) return false;
    let texts: string[] = [];
    let bytes = 0;
    const flushTexts = (): boolean => {
      if (texts.length === 0) return true;
      const ok = this.#sendTexts(texts, bytes);
      texts = [];
      bytes = 0;
      return ok;
    };
    for (const message of messages) {
      if (Array.isArray(message)) {
        if (!flushTexts()) return false;
        if (message.length > 0) this.#queue.push({ kind: 'batch', members: message, next: 0 });
        continue;
      }
      const text = this.#fitting(message);
      if (text === undefined) return false;
      texts.push(text);
      bytes += Buffer.byteLength(text, 'utf8');
    }
    if (!flushTexts()) return false;
    this.#pump();
    return !this.#closed;
  }

  /** Runs `then` once everything queued so far has been written (at once when nothing is). */
  end(then: () => void): void {
    if (this.#closed) return;
    this.#queue.push({ kind: 'end', then });
    this.#pump();
  }

  /** The socket is gone (or the peer was cut off): nothing more is written. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#queue.length = 0;
    this.#queuedBytes = 0;
    this.#stopWaiting();
  }

  /** The message serialised, or its MESSAGE_TOO_LARGE stand-in; undefined once the peer is cut off. */
  #fitting(message: OutgoingMessage): string | undefined {
    const text = serialize(message);
    const limit = this.#options.limitBytes;
    if (text.length <= limit / 3) return text;
    const bytes = Buffer.byteLength(text, 'utf8');
    if (bytes <= limit) return text;
    if (Array.isArray(message) || message instanceof SerializedMessage || !isResponse(message)) {
      // A notification cannot be replaced without breaking its stream: this peer cannot be served.
      this.#cut(`a ${bytes}-byte notification is over the ${limit}-byte output bound`);
      return undefined;
    }
    return serialize(this.#options.tooLarge(isRequestId(message.id) ? message.id : null, bytes, limit));
  }

  #sendTexts(texts: readonly string[], bytes: number): boolean {
    const sink = this.#options.sink;
    if (sink.buffered() + this.#queuedBytes + bytes > this.#options.limitBytes) {
      this.#cut(`it is not reading: ${sink.buffered() + this.#queuedBytes} bytes it has not taken, ${bytes} more to send`);
      return false;
    }
    if (this.#queue.length === 0) sink.writeMessages(texts);
    else {
      this.#queue.push({ kind: 'messages', texts, bytes });
      this.#queuedBytes += bytes;
    }
    return true;
  }

  /** Writes what is queued until it is all out or the socket wants a drain. */
  #pump(): void {
    const sink = this.#options.sink;
    while (!this.#closed && !this.#waiting && this.#queue.length > 0) {
      const item = this.#queue[0];
      if (item.kind === 'end') {
        this.#queue.shift();
        item.then();
        continue;
      }
      if (item.kind === 'messages') {
        this.#queue.shift();
        this.#queuedBytes -= item.bytes;
        sink.writeMessages(item.texts);
        continue;
      }
      if (!this.#writeBatch(item)) return;
      this.#queue.shift();
    }
    if (!this.#closed && this.#queue.length === 0) this.#pauseInput(false);
  }

  #pauseInput(paused: boolean): void {
    if (paused === this.#inputPaused) return;
    this.#inputPaused = paused;
    this.#options.backpressure?.(paused);
  }

  /** Writes members of a batch while the socket takes them; true once its last one is written. */
  #writeBatch(item: Extract<Item, { kind: 'batch' }>): boolean {
    const sink = this.#options.sink;
    const count = item.members.length;
    while (item.next < count) {
      const index = item.next;
      const text = this.#fitting(item.members[index]);
      if (text === undefined) return false;
      const first = index === 0;
      const last = index === count - 1;
      const piece = `${first ? '[' : ','}${text}${last ? ']' : ''}`;
      // Paced by 'drain', the socket holds little here; this is the bound's last word.
      if (sink.buffered() + this.#queuedBytes + Buffer.byteLength(piece, 'utf8') > this.#options.limitBytes && sink.buffered() > 0) {
        this.#cut(`it is not reading: ${sink.buffered()} bytes of a batch reply it has not taken`);
        return false;
      }
      item.next += 1;
      const more = sink.writePiece(piece, first, last);
      if (!more && !last) {
        this.#waitForDrain();
        return false;
      }
    }
    return true;
  }

  #waitForDrain(): void {
    this.#waiting = true;
    this.#pauseInput(true);
    this.#stallTimer = setTimeout(() => {
      this.#cut(`it took nothing of its reply for ${OUTPUT_STALL_MS / 1000} s`);
    }, OUTPUT_STALL_MS);
    this.#stallTimer.unref();
    this.#cancelDrain = this.#options.sink.onceDrained(() => {
      this.#stopWaiting();
      this.#pump();
    });
  }

  #stopWaiting(): void {
    this.#waiting = false;
    if (this.#stallTimer !== undefined) clearTimeout(this.#stallTimer);
    this.#stallTimer = undefined;
    this.#cancelDrain?.();
    this.#cancelDrain = undefined;
  }

  #cut(why: string): void {
    if (this.#closed) return;
    this.close();
    this.#options.cutOff(why);
  }
}
