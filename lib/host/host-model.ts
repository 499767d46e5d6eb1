// A model that lives in a host process of its own, as the core's ModelPort. Its runs are
// lib/runtime's Run, fed from the host's token frames instead of the addon's batches, so a
// client sees the same chunks, results and errors as from a model in-process.
//
// When the host crashes, exits or hangs, every run and call in flight gets one RUNTIME_FAILED
// error at once; runs asked for meanwhile wait (the scheduler's request timeout bounds them);
// the model is initialised again in a new host with the same settings, after a backoff, and the
// state set on it (chat template, function tools, cross-attention, LoRA adapters) is set again.
// After hostMaxFailures failures within hostFailureWindowMs it is failed: every request gets an
// error naming the last failure, until the model is destroyed.

import type { Logger } from 'pino';
import { RkllmError, isRkllmError } from '../errors';
import type { NativeRunEvent, RKLLMCrossAttnParam, RKLLMInput, RKLLMLoraAdapter, RunEventsListener } from '../native/binding';
import type { PartialInferParam } from '../runtime/model';
import type { OpenRuntimeOptions } from '../runtime/runtime';
import type { PartialParam } from '../runtime/param';
import { captureCallSite } from '../runtime/call-site';
import { Run } from '../runtime/run';
import { HostProcess, type HostFailure } from './host-process';
import type { EndMessage, HostMethod, ReplyMessage, TokenEvent, WireError } from './protocol';
import type { HostSettings } from './settings';

export type HostState = 'loading' | 'ready' | 'running' | 'restarting' | 'failed';

/** What /health and rkllm_get_models report of a model's host. */
export interface HostStatus {
  pid: number | null;
  state: HostState;
  restarts: number;
  /** VmRSS of the host process, in bytes (as last read; null before the first read or while none runs). */
  rss_bytes: number | null;
  last_failure: { reason: string; signal: string | null; exit_code: number | null; detail: string; at: string } | null;
}

interface RunEntry {
  listener: RunEventsListener;
  input: unknown;
  infer: unknown;
  /** Sent to the current host (else waiting for one that is ready). */
  sent: boolean;
}

/** First restart after this long, doubling per failure in the window, up to RESTART_BACKOFF_MAX_MS. */
const RESTART_BACKOFF_MS = 100;
const RESTART_BACKOFF_MAX_MS = 10_000;
/** rkllm_destroy in the host must answer within this; then the host is killed. */
const DESTROY_WAIT_MS = 5_000;

const EMPTY_PERF = { prefill_time_ms: 0, prefill_tokens: 0, generate_time_ms: 0, generate_tokens: 0, memory_usage_mb: 0 };

/** The server's /proc/self/fd/N (a file it checked and holds open) as the host can open it. */
function fromServer(path: string): string {
  return path.startsWith('/proc/self/fd/') ? `/proc/${process.pid}/fd/${path.slice('/proc/self/fd/'.length)}` : path;
}

function inferForHost(infer: PartialInferParam): PartialInferParam {
  const cache = infer.prompt_cache_params;
  if (!cache?.prompt_cache_path) return infer;
  return { ...infer, prompt_cache_params: { ...cache, prompt_cache_path: fromServer(cache.prompt_cache_path) } };
}

function errorFromWire(error: WireError): RkllmError {
  const known = error.code as RkllmError['code'];
  return new RkllmError(error.message, known, {
    field: error.field,
    reason: error.reason,
    fn: error.fn,
    returnCode: error.returnCode,
    facts: error.facts,
  });
}

export class HostModel {
  readonly #param: PartialParam;
  readonly #open: OpenRuntimeOptions;
  readonly #settings: HostSettings;
  readonly #logger: Logger;
  readonly #tag: Readonly<Record<string, unknown>>;
  #host: HostProcess | undefined;
  #state: HostState = 'loading';
  #destroyed = false;
  readonly #runs = new Map<number, RunEntry>();
  #nextRun = 1;
  #kv: number[] = [];
  #restarts = 0;
  readonly #failureTimes: number[] = [];
  #lastFailure: (HostFailure & { at: Date }) | undefined;
  #failedError: RkllmError | undefined;
  #restartTimer: NodeJS.Timeout | undefined;
  /** Calls that arrived while no host was ready, resumed (or refused) when that changes. */
  #waiting: Array<(error?: RkllmError) => void> = [];
  #rss: number | undefined;
  #rssReading = false;
  /** What was set on the model, to set again on a new host. */
  readonly #replay: { chatTemplate?: unknown[]; functionTools?: unknown[]; crossAttn?: unknown[]; loras: unknown[][] } = { loras: [] };

  private constructor(param: PartialParam, open: OpenRuntimeOptions, settings: HostSettings, logger: Logger) {
    this.#param = param;
    this.#open = open;
    this.#settings = settings;
    this.#logger = logger;
    this.#tag = { model: param.model_path, domain: param.extend_param?.base_domain_id };
  }

  /**
   * Loads the model in `spare` (a host whose runtime is open) or in a new host; rejects as
   * rkllm_init would (or RUNTIME_FAILED on a crash). A host whose rkllm_init failed cleanly is
   * handed to `giveBack` (it can serve the next load); any other is ended.
   */
  static async load(
    param: PartialParam,
    open: OpenRuntimeOptions,
    settings: HostSettings,
    logger: Logger,
    spare: HostProcess | undefined,
    giveBack: (host: HostProcess) => boolean,
  ): Promise<HostModel> {
    const model = new HostModel(param, open, settings, logger);
    try {
      await model.#start(spare);
    } catch (error) {
      const host = model.#host;
      model.#host = undefined;
      if (host && !host.hasFailed && !host.hasExited && isRkllmError(error) && error.code !== 'INTERNAL' && giveBack(host)) throw error;
      await host?.end(1000);
      throw error;
    }
    model.#state = 'ready';
    return model;
  }

  get destroyed(): boolean {
    return this.#destroyed;
  }

  status(): HostStatus {
    this.#refreshRss();
    const failure = this.#lastFailure;
    return {
      pid: this.#host && !this.#host.hasExited ? (this.#host.pid ?? null) : null,
      state: this.#state,
      restarts: this.#restarts,
      rss_bytes: this.#rss ?? null,
      last_failure: failure
        ? {
            reason: failure.reason,
            signal: failure.signal ?? null,
            exit_code: failure.exitCode ?? null,
            detail: failure.detail,
            at: failure.at.toISOString(),
          }
        : null,
    };
  }

  run(input: RKLLMInput, infer: PartialInferParam): Run {
    const site = captureCallSite(this.run);
    return new Run({ start: (listener) => this.#startRun(input, infer, listener), cancel: (id) => this.#cancelRun(id) }, {}, site);
  }

  isRunning(): boolean {
    for (const entry of this.#runs.values()) if (entry.sent) return true;
    return false;
  }

  /** As of the host's last answer (each call and run end carries it); zeros after a restart. */
  getKvCacheSize(): number[] {
    return [...this.#kv];
  }

  /** rkllm_abort on whatever runs now; 0 at once when no host is up (nothing runs). */
  async abort(): Promise<number> {
    this.#checkUsable();
    if (this.#state !== 'ready' && this.#state !== 'running') return 0;
    this.#host?.noteAbort();
    return this.#call('abort', []);
  }

  async loadLora(adapter: RKLLMLoraAdapter): Promise<number> {
    const code = await this.#call('loadLora', [adapter]);
    this.#replay.loras.push([adapter]);
    return code;
  }

  loadPromptCache(promptCachePath: string): Promise<number> {
    return this.#call('loadPromptCache', [fromServer(promptCachePath)]);
  }

  releasePromptCache(): Promise<number> {
    return this.#call('releasePromptCache', []);
  }

  clearKvCache(keepSystemPrompt: boolean, startPos?: number[], endPos?: number[]): Promise<number> {
    return this.#call('clearKvCache', [keepSystemPrompt, startPos, endPos]);
  }

  async setChatTemplate(systemPrompt: string, promptPrefix: string, promptPostfix: string): Promise<number> {
    const args = [systemPrompt, promptPrefix, promptPostfix];
    const code = await this.#call('setChatTemplate', args);
    this.#replay.chatTemplate = args;
    return code;
  }

  async setFunctionTools(systemPrompt: string, tools: string | object[], toolResponseStr: string): Promise<number> {
    const args = [systemPrompt, typeof tools === 'string' ? tools : JSON.stringify(tools), toolResponseStr];
    const code = await this.#call('setFunctionTools', args);
    this.#replay.functionTools = args;
    return code;
  }

  async setCrossAttnParams(params: RKLLMCrossAttnParam): Promise<number> {
    const code = await this.#call('setCrossAttnParams', [params]);
    this.#replay.crossAttn = [params];
    return code;
  }

  /** Ends queued and running runs as aborted, rkllm_destroy in the host (bounded), then the host. */
  async destroy(): Promise<number> {
    if (this.#destroyed) throw new RkllmError('the model was destroyed', 'MODEL_DESTROYED');
    this.#destroyed = true;
    clearTimeout(this.#restartTimer);
    this.#releaseWaiting(new RkllmError('the model was destroyed', 'MODEL_DESTROYED'));
    const host = this.#host;
    let code = 0;
    if (host && (this.#state === 'ready' || this.#state === 'running')) {
      let timer: NodeJS.Timeout | undefined;
      const bound = new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), DESTROY_WAIT_MS)));
      // A host that fails meanwhile has already ended every run; it is ended below all the same.
      const reply: ReplyMessage | null | undefined = await Promise.race([host.call('destroy', []).catch(() => null), bound]);
      clearTimeout(timer);
      if (reply === undefined) this.#logger.warn(this.#tag, `rkllm_destroy did not answer within ${DESTROY_WAIT_MS} ms; the model host is killed`);
      else if (reply && !reply.ok && reply.error) code = reply.error.returnCode ?? -1;
    }
    this.#endRuns((id) => this.#endEvent(id, 'aborted'));
    await host?.end(1000);
    return code;
  }

  /** One host started (or the spare taken) and the model loaded in it; rejects when either fails. */
  async #start(spare?: HostProcess): Promise<void> {
    const ref: { host?: HostProcess } = {};
    const events = this.#eventsFor(ref);
    const host = spare ?? new HostProcess(this.#settings, events, this.#logger, this.#tag);
    spare?.bind(events, this.#tag);
    ref.host = host;
    this.#host = host;
    if (!spare) await this.#expect(host.call('open', [this.#open]));
    this.#kv = (await this.#expect(host.call('init', [this.#param]))).kv ?? [];
    for (const [method, args] of this.#replayCalls()) await this.#expect(host.call(method, args));
  }

  #replayCalls(): Array<[HostMethod, unknown[]]> {
    const calls: Array<[HostMethod, unknown[]]> = [];
    const { chatTemplate, functionTools, crossAttn, loras } = this.#replay;
    for (const adapter of loras) calls.push(['loadLora', adapter]);
    if (chatTemplate) calls.push(['setChatTemplate', chatTemplate]);
    if (functionTools) calls.push(['setFunctionTools', functionTools]);
    if (crossAttn) calls.push(['setCrossAttnParams', crossAttn]);
    return calls;
  }

  async #expect(pending: Promise<ReplyMessage>): Promise<ReplyMessage> {
    const reply = await pending;
    if (!reply.ok) throw errorFromWire(reply.error ?? { message: 'the model host refused the call', code: 'INTERNAL' });
    return reply;
  }

  /** The events of one host (`ref.host`, set once made); a host that is no longer this model's is ignored. */
  #eventsFor(ref: { host?: HostProcess }): ConstructorParameters<typeof HostProcess>[1] {
    const mine = (): boolean => ref.host !== undefined && ref.host === this.#host;
    return {
      onTokens: (run, tokens) => {
        if (mine()) this.#onTokens(run, tokens);
      },
      onEnd: (message) => {
        if (mine()) this.#onEnd(message);
      },
      onFailure: (failure) => (mine() ? this.#onFailure(failure) : this.#failureError(failure, false)),
    };
  }

  #onTokens(run: number, tokens: TokenEvent[]): void {
    this.#runs.get(run)?.listener(tokens);
  }

  #onEnd(message: EndMessage): void {
    this.#kv = message.kv;
    const entry = this.#runs.get(message.run);
    if (!entry) return;
    this.#runs.delete(message.run);
    if (this.#state === 'running' && !this.isRunning()) this.#state = 'ready';
    const end: NativeRunEvent = { kind: 'end', status: message.status, perf: message.perf ?? { ...EMPTY_PERF }, time_us: 0 };
    if (message.error) end.error = { ...message.error };
    entry.listener([end]);
  }

  #onFailure(failure: HostFailure): RkllmError {
    const now = Date.now();
    this.#lastFailure = { ...failure, at: new Date(now) };
    const loading = this.#state === 'loading';
    if (this.#destroyed) return new RkllmError('the model was destroyed', 'MODEL_DESTROYED');
    this.#failureTimes.push(now);
    while (this.#failureTimes.length > 0 && now - this.#failureTimes[0] > this.#settings.hostFailureWindowMs) this.#failureTimes.shift();
    // A model that never loaded is not restarted: its rkllm_init fails, as in-process.
    const givesUp = loading || this.#failureTimes.length >= this.#settings.hostMaxFailures;
    const error = this.#failureError(failure, !givesUp);
    if (givesUp && !loading) {
      this.#state = 'failed';
      this.#failedError = this.#failedErrorFor(failure);
      this.#logger.error({ ...this.#tag, failures: this.#failureTimes.length }, this.#failedError.message);
    }
    // The runs the host had are lost; each ends now with the error.
    this.#endRuns((id) => this.#endEvent(id, 'error', error), (entry) => entry.sent || givesUp);
    if (givesUp) {
      this.#releaseWaiting(this.#failedError ?? error);
      return error;
    }
    this.#state = 'restarting';
    this.#scheduleRestart();
    return error;
  }

  #failureError(failure: HostFailure, restarting: boolean): RkllmError {
    const how = failure.reason === 'hang' ? 'hung' : failure.reason === 'exit' ? 'exited' : 'crashed';
    const then = this.#state === 'loading' ? 'the model was not loaded' : restarting ? 'the model is restarting' : 'the model has failed';
    return new RkllmError(`the runtime ${how} (${failure.detail}); ${then}`, 'RUNTIME_FAILED', {
      facts: {
        reason: failure.reason,
        signal: failure.signal ?? null,
        exit_code: failure.exitCode ?? null,
        restarting,
      },
    });
  }

  #failedErrorFor(failure: HostFailure): RkllmError {
    const { hostMaxFailures, hostFailureWindowMs } = this.#settings;
    return new RkllmError(
      `the model has failed: its runtime failed ${hostMaxFailures} times within ${hostFailureWindowMs} ms ` +
        `(last: ${failure.detail}); destroy it with rkllm_destroy and load it again`,
      'RUNTIME_FAILED',
      { facts: { reason: 'failed', last_reason: failure.reason, signal: failure.signal ?? null, exit_code: failure.exitCode ?? null, restarting: false } },
    );
  }

  #scheduleRestart(): void {
    const attempt = this.#failureTimes.length;
    const delay = Math.min(RESTART_BACKOFF_MAX_MS, RESTART_BACKOFF_MS * 2 ** (attempt - 1));
    this.#restartTimer = setTimeout(() => void this.#restart(), delay);
  }

  async #restart(): Promise<void> {
    if (this.#destroyed || this.#state !== 'restarting') return;
    this.#restarts++;
    this.#logger.warn({ ...this.#tag, restarts: this.#restarts }, 'model host restarting');
    const previous = this.#host;
    try {
      await this.#start();
    } catch (error) {
      // A crash or hang of the new host was handled as it happened; an init that failed cleanly
      // counts as a failure too.
      const host = this.#host;
      if (host && host !== previous && !host.hasFailed && !this.#destroyed) {
        const detail = `rkllm_init failed in the new host: ${error instanceof Error ? error.message : String(error)}`;
        this.#onFailure({ reason: 'exit', detail });
        void host.end(1000);
      }
      return;
    }
    if (this.#destroyed) return;
    this.#state = 'ready';
    this.#logger.info({ ...this.#tag, host_pid: this.#host?.pid, restarts: this.#restarts }, 'model host ready again');
    for (const [id, entry] of this.#runs) this.#send(id, entry);
    this.#releaseWaiting();
  }

  #checkUsable(): void {
    if (this.#destroyed) throw new RkllmError('the model was destroyed', 'MODEL_DESTROYED');
    if (this.#failedError) throw this.#failedError;
  }

  /** A call on the model, once a host is ready for it. */
  async #call(method: HostMethod, args: unknown[]): Promise<number> {
    this.#checkUsable();
    if (this.#state === 'restarting' || this.#state === 'loading') {
      await new Promise<void>((resolve, reject) => this.#waiting.push((error) => (error ? reject(error) : resolve())));
    }
    this.#checkUsable();
    const reply = await this.#host!.call(method, args);
    if (reply.kv) this.#kv = reply.kv;
    if (!reply.ok) throw errorFromWire(reply.error ?? { message: `${method} failed in the model host`, code: 'INTERNAL' });
    return typeof reply.value === 'number' ? reply.value : 0;
  }

  #releaseWaiting(error?: RkllmError): void {
    const waiting = this.#waiting;
    this.#waiting = [];
    for (const resume of waiting) resume(error);
  }

  #startRun(input: RKLLMInput, infer: PartialInferParam, listener: RunEventsListener): number {
    this.#checkUsable();
    const id = this.#nextRun++;
    const entry: RunEntry = { listener, input, infer: inferForHost(infer), sent: false };
    this.#runs.set(id, entry);
    if (this.#state === 'ready' || this.#state === 'running') this.#send(id, entry);
    return id;
  }

  #send(id: number, entry: RunEntry): void {
    entry.sent = true;
    this.#state = 'running';
    this.#host!.startRun(id, entry.input, entry.infer);
  }

  #cancelRun(id: number): boolean {
    const entry = this.#runs.get(id);
    if (!entry) return false;
    if (entry.sent) {
      this.#host?.cancelRun(id);
    } else {
      // Still waiting for a host: it never reached one, so it ends here.
      this.#runs.delete(id);
      queueMicrotask(() => entry.listener([this.#endEvent(id, 'aborted')]));
    }
    return true;
  }

  #endEvent(_id: number, status: 'aborted' | 'error', error?: RkllmError): NativeRunEvent {
    const end: NativeRunEvent = { kind: 'end', status, time_us: 0 };
    if (error) end.error = { code: error.code, message: error.message, facts: error.facts };
    return end;
  }

  /** Ends the runs `which` picks (all by default) with the event `make` builds. */
  #endRuns(make: (id: number) => NativeRunEvent, which: (entry: RunEntry) => boolean = () => true): void {
    for (const [id, entry] of [...this.#runs]) {
      if (!which(entry)) continue;
      this.#runs.delete(id);
      entry.listener([make(id)]);
    }
    if (this.#state === 'running' && !this.isRunning()) this.#state = 'ready';
  }

  #refreshRss(): void {
    if (this.#rssReading || !this.#host) return;
    this.#rssReading = true;
    void this.#host.rssBytes().then((rss) => {
      this.#rssReading = false;
      this.#rss = rss;
    });
  }
}
