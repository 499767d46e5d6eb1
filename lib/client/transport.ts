// The one interface of a client medium: send one framed text, hear every received text and the
// close. A transport knows framing and sockets but no JSON-RPC (RpcClient adds that), so the same
// object serves a full client, a load generator that never parses, and a probe that sends garbage.

export type TransportKind = 'stdio' | 'tcp' | 'udp' | 'http' | 'websocket';

export interface CloseInfo {
  /** 'closed': a graceful end (either side); 'dropped': our drop(); 'error': the medium failed. */
  reason: 'closed' | 'dropped' | 'error';
  /** WebSocket: the close code and reason the peer sent (1000, 1008, 1009, ...). */
  code?: number;
  detail?: string;
  error?: Error;
}

export interface SendOptions {
  /** HTTP only: aborting destroys this message's exchange (the server then cancels its work). */
  signal?: AbortSignal;
}

export interface ClientTransport {
  readonly kind: TransportKind;
  /** The server can push notifications to this client (false for plain HTTP: streams are polled). */
  readonly pushes: boolean;
  /**
   * Each send is a whole exchange (HTTP): its promise settles only after every text the server
   * answered it with has been reported, so a request with no reply by then will get none.
   */
  readonly exchanges: boolean;
  readonly closed: boolean;
  readonly closeInfo: CloseInfo | undefined;
  /**
   * One message, framed for the medium (a line, a datagram, a frame, a POST body). Resolves once
   * it is handed to the system (HTTP: once its response has ended); rejects when it cannot be
   * sent (a ClientError, or INVALID_ARGUMENT for a text the framing cannot carry).
   */
  send(text: string, options?: SendOptions): Promise<void>;
  /** Bytes with no framing added: for byte streams as they are, otherwise as one message. */
  sendBytes(data: string | Uint8Array, options?: SendOptions): Promise<void>;
  /** Every received text (a line, a datagram, a frame, an event, a response body), in order. */
  onText(listener: (text: string) => void): () => void;
  /** Problems that do not close the transport (an over-long message skipped, a socket error). */
  onError(listener: (error: Error) => void): () => void;
  /** Told once; a listener added after the close is told at once. */
  onClose(listener: (info: CloseInfo) => void): () => void;
  /** Graceful: the server gets an end it can answer, bounded; then everything is released. */
  close(): Promise<void>;
  /** Abrupt, as a crashed client: a TCP reset, a WebSocket terminate, HTTP requests destroyed. */
  drop(): void;
}

/** Texts held for a listener that is not there yet (a refusal sent right after connecting). */
const MAX_EARLY_TEXTS = 1000;

/** Listener bookkeeping shared by every transport. */
export abstract class TransportBase {
  private readonly textListeners = new Set<(text: string) => void>();
  private readonly errorListeners = new Set<(error: Error) => void>();
  private readonly closeListeners = new Set<(info: CloseInfo) => void>();
  private early: string[] | undefined = [];
  private info: CloseInfo | undefined;

  get closed(): boolean {
    return this.info !== undefined;
  }

  get closeInfo(): CloseInfo | undefined {
    return this.info;
  }

  onText(listener: (text: string) => void): () => void {
    this.textListeners.add(listener);
    const early = this.early;
    this.early = undefined;
    if (early) for (const text of early) this.callEach([listener], text);
    return () => this.textListeners.delete(listener);
  }

  onError(listener: (error: Error) => void): () => void {
    this.errorListeners.add(listener);
    return () => this.errorListeners.delete(listener);
  }

  onClose(listener: (info: CloseInfo) => void): () => void {
    const info = this.info;
    if (info) {
      queueMicrotask(() => listener(info));
      return () => undefined;
    }
    this.closeListeners.add(listener);
    return () => this.closeListeners.delete(listener);
  }

  protected deliver(text: string): void {
    if (this.early) {
      if (this.early.length < MAX_EARLY_TEXTS) this.early.push(text);
      return;
    }
    this.callEach(this.textListeners, text);
  }

  protected report(error: Error): void {
    this.callEach(this.errorListeners, error);
  }

  /** Only the first call counts; later events of a dying socket change nothing. */
  protected markClosed(info: CloseInfo): void {
    if (this.info) return;
    this.info = info;
    const listeners = [...this.closeListeners];
    this.closeListeners.clear();
    this.callEach(listeners, info);
  }

  /** A listener that throws must not stop the others or the socket's reading: its error is rethrown later. */
  private callEach<T>(listeners: Iterable<(value: T) => void>, value: T): void {
    for (const listener of [...listeners]) {
      try {
        listener(value);
      } catch (error) {
        queueMicrotask(() => {
          throw error;
        });
      }
    }
  }
}

/** " (dropped)", " (closed, code 1009, ...)": for error messages. */
export function describeClose(info: CloseInfo | undefined): string {
  if (!info) return '';
  const parts = [info.reason, info.code === undefined ? undefined : `code ${info.code}`, info.detail, info.error?.message];
  return ` (${parts.filter((part) => part !== undefined && part !== '').join(', ')})`;
}
