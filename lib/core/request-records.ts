// One record per finished request, from every front end: what the request log line, /metrics
// and the web page's status view are made of. Front ends emit; observers (lib/serve) listen.
// The last records are kept in a small ring for the status view.

import { RkllmError } from '../errors';
import type { Perf } from '../native/binding';
import type { Job } from './job';

/** Which front end took the request. */
export type FrontEndName = 'jsonrpc' | 'openai' | 'ollama';

export interface RequestRecord {
  frontEnd: FrontEndName;
  /** The transport it came in on ('http', 'tcp', 'websocket', 'udp', 'stdio'). */
  transport: string;
  /**
   * The JSON-RPC method, or the HTTP method and route ('POST /v1/chat/completions'): one of a
   * bounded set ('GET /v1/models/{model}', 'unknown route', 'unknown method'), fit for a metric label.
   */
  route: string;
  /** What the client asked for, when it differs from `route`: the HTTP method and path, the JSON-RPC method as sent. */
  path?: string;
  /** A cheap control call (JSON-RPC poll, cancel, listings): its success is logged at debug only. */
  control?: boolean;
  /** The model as the client named it; undefined: the request named none. */
  model?: string;
  /** 'ok', 'error' (answered with an error) or 'cancelled' (the client left or cancelled). */
  outcome: 'ok' | 'error' | 'cancelled';
  /** The HTTP status answered (HTTP front ends only). */
  httpStatus?: number;
  /** The domain error's code (RKLLM_ERROR_CODES), or the front end's own for an error of its wire ('model_not_found', 'http_400', 'METHOD_NOT_FOUND'), and its message. */
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

/** What a request's run reports: its job (token times) and counts. */
export interface RunFigures {
  job?: Job;
  /** Undefined when the runtime did not say (an answer cut early reports no perf). */
  promptTokens: number | undefined;
  generatedTokens: number;
  /** The runtime's own perf, when the run ended by itself. */
  perf?: Pick<Perf, 'prefill_time_ms' | 'generate_time_ms' | 'generate_tokens'>;
}

/** Codes that mean the client went away or stopped the request, not that the server failed it. */
function isCancellation(error: unknown): boolean {
  return error instanceof RkllmError && error.code === 'REQUEST_CANCELLED';
}

/**
 * One request on its way: a front end notes its model, its run and its error as they become
 * known, and finishes it once, when its answer's last byte is written or its client left.
 */
export class RequestRecorder {
  readonly #records: RequestRecords;
  readonly #startedAt: number;
  readonly #record: Pick<RequestRecord, 'frontEnd' | 'transport' | 'route' | 'path' | 'control'>;
  #model: string | undefined;
  #run: RunFigures | undefined;
  #error: { code: string; message: string } | undefined;
  #cancelled = false;
  #finished = false;

  /** `startedAt`: performance.now() when the request arrived, if before now. */
  constructor(records: RequestRecords, record: Pick<RequestRecord, 'frontEnd' | 'transport' | 'route' | 'path' | 'control'>, startedAt = performance.now()) {
    this.#records = records;
    this.#record = record;
    this.#startedAt = startedAt;
  }

  set control(control: boolean) {
    this.#record.control = control;
  }

  noteModel(model: string | undefined): void {
    if (model !== undefined) this.#model ??= model;
  }

  noteRun(figures: RunFigures): void {
    this.#run = figures;
  }

  /** The request failed with this (the first error noted is the one kept). */
  noteError(error: unknown, code?: string): void {
    if (this.#error !== undefined) return;
    if (isCancellation(error)) this.#cancelled = true;
    const message = error instanceof Error ? error.message : String(error);
    this.#error = { code: code ?? (error instanceof RkllmError ? error.code : 'INTERNAL'), message };
  }

  /** The answer is complete (`httpStatus` for HTTP), or `cancelled`: the client left first. Once only. */
  finish(httpStatus?: number, cancelled = false): void {
    if (this.#finished) return;
    this.#finished = true;
    const endedAt = performance.now();
    const outcome = cancelled || this.#cancelled ? 'cancelled' : this.#error !== undefined || (httpStatus ?? 200) >= 400 ? 'error' : 'ok';
    const record: RequestRecord = { ...this.#record, model: this.#model, outcome, durationMs: round(endedAt - this.#startedAt), endedAt: Date.now() };
    if (httpStatus !== undefined) record.httpStatus = httpStatus;
    if (this.#error !== undefined && outcome !== 'ok') {
      record.errorCode = this.#error.code;
      record.errorMessage = this.#error.message;
    }
    if (this.#run) Object.assign(record, this.#timing(this.#run));
    this.#records.emit(record);
  }

  #timing(run: RunFigures): Partial<RequestRecord> {
    const figures: Partial<RequestRecord> = { generatedTokens: run.generatedTokens };
    if (run.promptTokens !== undefined) figures.promptTokens = run.promptTokens;
    const job = run.job;
    // A streamed run: its first token's arrival; a plain one: its start plus the runtime's prefill time.
    const firstAt = job?.firstTokenAt ?? (job?.runStartedAt !== undefined && run.perf ? job.runStartedAt + run.perf.prefill_time_ms : undefined);
    if (firstAt !== undefined && run.generatedTokens > 0) figures.ttftMs = round(firstAt - this.#startedAt);
    // The decode rate from the runtime's own token times; a run that streamed nothing: its perf.
    const first = job?.firstTokenUs;
    const last = job?.lastTokenUs;
    if (first !== undefined && last !== undefined && last > first && run.generatedTokens > 1) {
      figures.tokensPerSecond = round(((run.generatedTokens - 1) * 1e6) / (last - first));
    } else if (run.perf && run.perf.generate_time_ms > 0 && run.perf.generate_tokens > 0) {
      figures.tokensPerSecond = round((run.perf.generate_tokens * 1000) / run.perf.generate_time_ms);
    }
    return figures;
  }
}

/** Two decimals: what a log line or a metric needs of a duration. */
function round(value: number): number {
  return Math.round(value * 100) / 100;
}

/** How many records the ring keeps for the status view. */
const KEPT_RECORDS = 50;

export class RequestRecords {
  readonly #listeners: RequestListener[] = [];
  readonly #recent: RequestRecord[] = [];

  on(listener: RequestListener): void {
    this.#listeners.push(listener);
  }

  emit(record: RequestRecord): void {
    // A client polling its stream or the listings would push the real requests out.
    if (record.control !== true) {
      this.#recent.push(record);
      if (this.#recent.length > KEPT_RECORDS) this.#recent.shift();
    }
    for (const listener of this.#listeners) listener(record);
  }

  /** The last records of requests that are not cheap control calls, oldest first. */
  recent(): readonly RequestRecord[] {
    return this.#recent;
  }
}

/** What a record needs of an HTTP response (node's http.ServerResponse has it). */
export interface RecordedResponse {
  readonly req?: { readonly method?: string };
  readonly statusCode: number;
  readonly writableFinished: boolean;
  once(event: 'close', listener: () => void): unknown;
}

/**
 * The records of one HTTP front end: one per response, started as the request reaches the
 * front end and finished when the response's last byte is written or its client leaves.
 */
export class HttpRequestRecords {
  readonly #recorders = new WeakMap<RecordedResponse, RequestRecorder>();
  readonly #frontEnd: FrontEndName;
  /** The route as a label (a bounded set, whatever path a client sends). */
  readonly #routeOf: (path: string) => string;
  /** Routes clients poll: their successes are logged at debug. */
  readonly #isControl: (route: string) => boolean;

  /** The code a front end's own error is recorded with (undefined: the domain error's, if any). */
  readonly #codeOf: (error: unknown) => string | undefined;

  constructor(
    frontEnd: FrontEndName,
    routeOf: (path: string) => string,
    isControl: (route: string) => boolean,
    codeOf: (error: unknown) => string | undefined,
  ) {
    this.#frontEnd = frontEnd;
    this.#routeOf = routeOf;
    this.#isControl = isControl;
    this.#codeOf = codeOf;
  }

  /** The response's recorder, started now if it has none. */
  start(records: RequestRecords, response: RecordedResponse, path: string): RequestRecorder {
    const known = this.#recorders.get(response);
    if (known) return known;
    const method = response.req?.method ?? 'GET';
    const route = `${method} ${this.#routeOf(path)}`;
    const asked = `${method} ${path}`;
    const recorder = new RequestRecorder(records, { frontEnd: this.#frontEnd, transport: 'http', route, ...(asked === route ? {} : { path: asked }) });
    if (this.#isControl(route)) recorder.control = true;
    this.#recorders.set(response, recorder);
    response.once('close', () => recorder.finish(response.statusCode, !response.writableFinished));
    return recorder;
  }

  of(response: RecordedResponse): RequestRecorder | undefined {
    return this.#recorders.get(response);
  }

  /** Notes the error the response answers with. */
  noteError(response: RecordedResponse, error: unknown): void {
    this.#recorders.get(response)?.noteError(error, this.#codeOf(error));
  }
}
