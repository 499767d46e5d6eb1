// One record per finished request, from every front end: what the request log line, /metrics
// and the web page's status view are made of. Front ends emit; observers (lib/serve) listen.
// The last records are kept in a small ring for the status view.

/** Which front end took the request. */
export type FrontEndName = 'jsonrpc' | 'openai' | 'ollama';

export interface RequestRecord {
  frontEnd: FrontEndName;
  /** The transport it came in on ('http', 'tcp', 'websocket', 'udp', 'stdio'). */
  transport: string;
  /** The JSON-RPC method, or the HTTP method and path ('POST /v1/chat/completions'). */
  route: string;
  /** The model as the client named it; undefined: the request named none. */
  model?: string;
  /** 'ok', 'error' (answered with an error) or 'cancelled' (the client left or cancelled). */
  outcome: 'ok' | 'error' | 'cancelled';
  /** The HTTP status answered (HTTP front ends only). */
  httpStatus?: number;
  /** The domain error's code when the outcome is 'error' (RKLLM_ERROR_CODES), and its message. */
  errorCode?: string;
  errorMessage?: string;
  /** Tokens the runtime prefilled and generated; undefined: no run. */
  promptTokens?: number;
  generatedTokens?: number;
  /** From the request's arrival to its first token. */
  ttftMs?: number;
  /** Generated tokens over the time from the first token to the last. */
  tokensPerSecond?: number;
  /** From the request's arrival to its answer's end. */
  durationMs: number;
  /** When it ended (Date.now()). */
  endedAt: number;
}

export type RequestListener = (record: RequestRecord) => void;

/** How many records the ring keeps for the status view. */
const KEPT_RECORDS = 50;

export class RequestRecords {
  readonly #listeners: RequestListener[] = [];
  readonly #recent: RequestRecord[] = [];

  on(listener: RequestListener): void {
    this.#listeners.push(listener);
  }

  emit(record: RequestRecord): void {
    this.#recent.push(record);
    if (this.#recent.length > KEPT_RECORDS) this.#recent.shift();
    for (const listener of this.#listeners) listener(record);
  }

  /** The last records, oldest first. */
  recent(): readonly RequestRecord[] {
    return this.#recent;
  }
}
