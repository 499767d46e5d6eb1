// The server core: the runtime, the models and their schedulers, the streams and the client
// sessions, with nothing of any wire. Front ends (lib/methods, lib/openai) turn their requests
// into calls here and the core's results and domain errors into their replies.

import type { Logger } from 'pino';
import { RkllmError } from '../errors';
import type { HostStatus } from '../host/host-model';
import type { RKLLMInput } from '../native/binding';
import type { PartialInferParam } from '../runtime/model';
import type { RunChunk } from '../runtime/run';
import { Catalog } from './catalog';
import type { Job, JobOutcome, JobSpec, RequestId } from './job';
import { ModelControl, type ModelControlPolicy } from './model-control';
import type { RuntimePort } from './model-port';
import type { ModelEntry, ModelSettings } from './model-settings';
import { ModelRegistry, type LoadedModel } from './models';
import { PathPolicy } from './paths';
import { readinessOf, type Readiness } from './readiness';
import { PromptCacheOwners, PromptCacheStore } from './prompt-caches';
import { RequestRecords } from './request-records';
import { Residency } from './residency';
import type { WireRunResult } from './run-result';
import { SessionRegistry, type Session } from './sessions';
import type { Stream } from './stream';
import { StreamRegistry } from './streams';

export interface CoreSettings {
  /** Directories a client's model and LoRA paths must resolve inside. */
  modelsDirs: string[];
  /** The directory a client's prompt cache paths must resolve inside. */
  cacheDir?: string;
  /** Where the chat front ends keep their own prompt caches (lib/core/prompt-caches.ts); undefined: none. */
  promptCacheDir?: string;
  /** The most bytes those prompt caches hold at once; 0: none. */
  promptCacheBytes?: number;
  /** Runs waiting per model beyond the one running; a full queue answers at once. */
  maxQueue: number;
  /**
   * Models loaded or loading at once, the start-up model included; rkllm_init beyond is refused.
   * Default 8: a board's memory, not the NPU, is what runs out (about 2 GB per 1.5B w8a8 model;
   * 16 GB on the larger RK3588 boards).
   */
  maxLoadedModels: number;
  /** rkllm_init calls in flight at once (each reads a whole model file from the same storage); one more is refused. */
  maxLoadingModels: number;
  /** A run still queued or running after this long is cancelled (0 = no limit). */
  requestTimeoutMs: number;
  /** A finished or abandoned stream's buffered chunks expire this long after the last poll. */
  streamExpiryMs: number;
  /** Chunks kept per stream for poll; older ones are dropped (poll reports the gap). */
  maxBufferedChunks: number;
  /** Streams kept at once over every client; at the bound the oldest finished one makes room. */
  maxStreams: number;
  /** Streams one connection keeps at once; at the bound its oldest finished one makes room. */
  maxStreamsPerClient: number;
  /** Estimated bytes of stream chunks kept over every stream. */
  maxStreamBytes: number;
  /** The most chunks one poll answers (a client pages with from_seq / max_chunks). */
  maxPollChunks: number;
  /** Who may make model-wide calls (lib/core/model-control.ts). */
  modelControl: ModelControlPolicy;
  /** Test hooks: token chunks carry the runtime's callback time. */
  enableTestHooks: boolean;
  /** The config file's catalog models (lib/core/catalog.ts), loaded on demand. */
  models: ModelEntry[];
  /** The command line's model flags: defaults of every catalog model, over the start-up model's own settings. */
  modelDefaults: ModelSettings;
}

/** A loaded model's host process, as /health and rkllm_get_constants show it. */
export type ModelHostReport = { handle: string } & HostStatus;

export interface CoreStats {
  /** Client sessions the core holds state for. */
  connections: number;
  /** Streams not yet expired (running, queued, or finished but still pollable). */
  streams: number;
  /** Estimated bytes of the chunks those streams keep (bounded by maxStreamBytes). */
  streamBytes: number;
  queued: number;
  running: number;
  models: number;
  /** Each loaded model's host, when the runtime keeps models in hosts (the server always does). */
  hosts?: ModelHostReport[];
}

/** How the chunks of a run are kept: not at all, in a stream pushed to the session, or in a stream for poll only. */
export type StreamMode = 'none' | 'push' | 'poll';

export interface RunRequest {
  requestId: RequestId;
  input: RKLLMInput;
  infer: PartialInferParam;
  /** The client session that owns the request: its close cancels it. */
  session: Session | undefined;
  stream: StreamMode;
  prepare?: JobSpec['prepare'];
  /**
   * Chunks as they come, for a front end that streams them itself (then `stream` is 'none') or
   * that decides what of a batch its stream gets (it calls `stream.addTokens`: a batch the answer
   * ends inside of is kept only up to there).
   */
  onChunks?(chunks: readonly RunChunk[], job: Job, stream: Stream | undefined): void;
  /** Called as the job settles, before the next job on the model can start. */
  onSettled?(outcome: JobOutcome): void;
  /** What the stream's last chunk reports, when the front end reads the outcome otherwise (an answer that met the context). */
  streamOutcome?(outcome: JobOutcome): JobOutcome;
}

export interface SubmittedRun {
  readonly job: Job;
  /** The stream the run's chunks go to (stream 'push' or 'poll'). */
  readonly stream: Stream | undefined;
  /** The final result; rejects with the domain error of a failed or ended request. */
  readonly result: Promise<WireRunResult>;
}

function resultOf(outcome: JobOutcome): WireRunResult {
  if (outcome.kind === 'finished') return outcome.result;
  throw outcome.error;
}

export class ServerCore {
  readonly settings: CoreSettings;
  readonly logger: Logger;
  readonly runtime: RuntimePort;
  readonly paths: PathPolicy;
  readonly models: ModelRegistry;
  readonly sessions = new SessionRegistry();
  readonly streams: StreamRegistry;
  readonly control: ModelControl;
  /** Every model a request may name (lib/core/catalog.ts). */
  readonly catalog: Catalog;
  /** Loads catalog models on demand and unloads them after their keep-alive (lib/core/residency.ts). */
  readonly residency: Residency;
  /** One record per finished request of every front end (logs, /metrics, the status view). */
  readonly requests = new RequestRecords();
  /** The chat front ends' prompt caches: several conversations' KV state per model. */
  readonly promptCaches: PromptCacheStore;
  /** Which model saved each prompt cache JSON-RPC clients saved (never loaded into another). */
  readonly promptCacheOwners = new PromptCacheOwners();
  shuttingDown = false;
  #defaults: ReturnType<RuntimePort['createDefaultParam']> | undefined;

  /** Throws an RkllmError (a start-up failure) when a configured directory is missing. */
  constructor(settings: CoreSettings, logger: Logger, runtime: RuntimePort) {
    this.settings = settings;
    this.logger = logger;
    this.runtime = runtime;
    this.paths = new PathPolicy(settings.modelsDirs, settings.cacheDir, runtime.info.emulated);
    this.models = new ModelRegistry(runtime, settings);
    this.streams = new StreamRegistry(settings);
    this.control = new ModelControl(settings.modelControl, (client) => this.sessions.isClosed(client));
    this.catalog = new Catalog(
      { modelsDirs: settings.modelsDirs, models: settings.models ?? [], modelDefaults: settings.modelDefaults ?? {}, emulated: runtime.info.emulated },
      logger,
    );
    this.residency = new Residency(this.models, this.catalog, logger, {
      maxLoadedModels: settings.maxLoadedModels,
      maxQueue: settings.maxQueue,
      requestTimeoutMs: settings.requestTimeoutMs,
    });
    this.promptCaches = new PromptCacheStore({ dir: settings.promptCacheDir, maxBytes: settings.promptCacheBytes ?? 0 }, logger);
    this.models.onDestroyed((loaded) => void this.promptCaches.forget(loaded));
  }

  /** The runtime's own RKLLMParam defaults, asked once (they are constant for its life). */
  defaultParam(): ReturnType<RuntimePort['createDefaultParam']> {
    this.#defaults ??= this.runtime.createDefaultParam();
    return { ...this.#defaults, extend_param: { ...this.#defaults.extend_param } };
  }

  /** Refuses new work while shutting down. */
  checkAccepting(): void {
    if (this.shuttingDown) throw new RkllmError('the server is shutting down and takes no new requests', 'SHUTTING_DOWN');
  }

  /**
   * Queues one inference on its model, with its stream (if any) and its owner wired. Throws at
   * once (QUEUE_FULL, TOO_MANY_STREAMS, MODEL_DESTROYED, SHUTTING_DOWN) when it cannot be taken.
   */
  submitRun(loaded: LoadedModel, request: RunRequest): SubmittedRun {
    loaded.scheduler.checkCapacity();
    this.#checkUnreadStreams(loaded);
    const { session } = request;
    const stream = request.stream === 'none' ? undefined : this.streams.create(request.requestId, request.stream === 'push' ? session : undefined, loaded);
    const onChunks = request.onChunks;
    const job: Job = loaded.scheduler.submit({
      requestId: request.requestId,
      input: request.input,
      infer: request.infer,
      streaming: stream !== undefined || onChunks !== undefined,
      prepare: request.prepare,
      onChunks: (chunks) => {
        if (onChunks) onChunks(chunks, job, stream);
        else stream?.addTokens(chunks);
      },
      onSettled: (outcome) => {
        if (stream) {
          stream.finish(request.streamOutcome?.(outcome) ?? outcome);
          this.streams.finished(stream);
        }
        request.onSettled?.(outcome);
      },
    });
    // A request belongs to its session (its close cancels it) unless it is a poll-only stream,
    // which belongs to nobody and lives until it expires.
    if (session && request.stream !== 'poll') session.holdJob(job);
    this.control.noteRequest(loaded, job, request.stream === 'poll' ? undefined : session?.key);
    if (stream) stream.job = job;
    this.residency.noteRun(loaded, job);
    const result = job.done.then(resultOf);
    // A streamed run's end also reaches its client through the stream; nobody need await this.
    result.catch(() => undefined);
    return { job, stream, result };
  }

  /**
   * Finished poll-only streams that nobody has read to the end hold a place in their model's
   * queue (one running and maxQueue waiting): a client cannot pile up unread output by starting
   * runs that finish at once. Reading a stream to its end, or its expiry, frees the place.
   */
  #checkUnreadStreams(loaded: LoadedModel): void {
    const unread = this.streams.unreadOn(loaded);
    if (unread === 0) return;
    const { maxQueue } = this.settings;
    const held = loaded.scheduler.running + loaded.scheduler.queued + unread;
    if (held <= maxQueue) return;
    throw new RkllmError(
      `${unread} finished streams of this model have not been read to their end and count against its queue (limit ${maxQueue} waiting); ` +
        'poll them, or wait until they expire',
      'QUEUE_FULL',
      { facts: { limit: maxQueue, unread_streams: unread } },
    );
  }

  /** The client is gone: its requests are cancelled and its streams freed. Idempotent. */
  closeSession(key: object): void {
    const session = this.sessions.close(key);
    if (!session) return;
    for (const stream of [...session.streams]) this.streams.remove(stream);
    for (const job of [...session.jobs]) job.cancel('connection_closed');
  }

  stats(): CoreStats {
    let queued = 0;
    let running = 0;
    for (const loaded of this.models.all()) {
      queued += loaded.scheduler.queued;
      running += loaded.scheduler.running;
    }
    const stats: CoreStats = { connections: this.sessions.size, streams: this.streams.size, streamBytes: this.streams.bytes, queued, running, models: this.models.size };
    if (this.runtime.hostStatus) stats.hosts = this.hostReports();
    return stats;
  }

  /** Whether requests sent now would be served (GET /health's status; lib/core/readiness.ts). */
  readiness(): Readiness {
    return readinessOf({
      startupLoading: this.residency.startupIsLoading,
      loading: this.residency.loadingModels(),
      // A model a client loaded with rkllm_init is that client's own: its failure is not the server's.
      failed: this.models
        .all()
        .filter((loaded) => this.residency.entryOf(loaded) !== undefined && this.runtime.hostStatus?.(loaded.model)?.state === 'failed')
        .map((loaded) => loaded.handle),
      loadedModels: this.models.size,
      servableCatalogModels: () => this.catalog.hasServableModels(),
    });
  }

  /** Each loaded model's host process (none when the runtime runs models in this process). */
  hostReports(): ModelHostReport[] {
    const reports: ModelHostReport[] = [];
    for (const loaded of this.models.all()) {
      const status = this.runtime.hostStatus?.(loaded.model);
      if (status) reports.push({ handle: loaded.handle, ...status });
    }
    return reports;
  }

  /**
   * Stops taking work, cancels (or, with 'finish', lets finish) every run, destroys every model.
   * Bounded by timeoutMs; never rejects.
   */
  async shutdown(mode: 'cancel' | 'finish', timeoutMs: number): Promise<void> {
    this.shuttingDown = true;
    this.residency.close();
    const deadline = Date.now() + timeoutMs;
    // Inits in flight are answered now, while their clients can still hear it; their models are
    // destroyed once loaded, if that happens within the deadline (else the addon's exit hook does).
    const loading = this.models.loading;
    const abandoned = this.models.closeLoading(new RkllmError('the server is shutting down; the model was not kept', 'SHUTTING_DOWN'));
    if (loading > 0) {
      void abandoned.then(() => this.logger.info({ models: loading }, 'models still loading at shutdown were destroyed once loaded'));
    }
    const models = this.models.all();
    if (mode === 'finish') {
      await Promise.all(models.map((loaded) => loaded.scheduler.idle(Math.max(0, deadline - Date.now()))));
    }
    const destroyed = Promise.all(
      models.map((loaded) =>
        this.models.destroy(loaded, 'shutdown').catch((error: unknown) => {
          this.logger.warn({ handle: loaded.handle, err: error }, 'rkllm_destroy failed during shutdown');
        }),
      ),
    );
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, Math.max(0, deadline - Date.now()));
      timer.unref();
    });
    await Promise.race([Promise.all([destroyed, abandoned]), timeout]);
    clearTimeout(timer);
    this.streams.clear();
    await this.promptCaches.close();
    await this.runtime.close?.();
  }
}
