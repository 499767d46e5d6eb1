// Loaded models by handle. The start-up model is "default"; rkllm_init adds more under a
// client-chosen or generated handle ("model-N"), each on its own extend_param.base_domain_id
// (the lowest free one unless the client names one: see askedDomain). Handles and domains are
// reserved while rkllm_init runs, so two concurrent inits cannot take the same one.
//
// Admission: at most maxLoadedModels models loaded or loading, and at most maxLoadingModels
// rkllm_init calls in flight; beyond either an init is refused at once (TOO_MANY_MODELS), so no
// batch of inits can take the board's memory or the process's threads. At shutdown an init still
// in flight is answered at once (SHUTTING_DOWN) and its model destroyed as soon as it has loaded.

import { RkllmError, invalidArgument } from '../errors';
import { ExtendParam, membersIn } from '../native/structs';
import type { PartialParam } from '../runtime/param';
import type { EndReason } from './job';
import type { ResolvedModelSettings } from './model-settings';
import type { ModelPort, RuntimePort } from './model-port';
import { Scheduler, type SchedulerLimits } from './scheduler';

export interface ModelLimits extends SchedulerLimits {
  /** Models loaded or loading at once (the start-up model included). */
  maxLoadedModels: number;
  /** rkllm_init calls in flight at once. */
  maxLoadingModels: number;
}

export interface LoadedModel {
  readonly handle: string;
  readonly model: ModelPort;
  readonly domain: number;
  readonly scheduler: Scheduler;
  /** The RKLLMParam it was loaded with (members left out took the runtime's defaults). */
  readonly param: PartialParam;
  /** The settings it was loaded with when it came from the catalog (lib/core/model-settings.ts); undefined for rkllm_init's. */
  readonly settings?: ResolvedModelSettings;
}

/** Handles destroyed recently, remembered so a late request gets "destroyed", not "unknown". */
const REMEMBERED_DESTROYED = 256;

/** An rkllm_init in flight. */
interface Loading {
  /** Answers its caller with `error` now; the model, once loaded, is destroyed instead of kept. */
  abandon(error: RkllmError): void;
  /** Settles when the native init has ended and an abandoned model is destroyed. Never rejects. */
  readonly ended: Promise<void>;
}

export class ModelRegistry {
  readonly #runtime: RuntimePort;
  readonly #limits: ModelLimits;
  readonly #loaded = new Map<string, LoadedModel>();
  readonly #loading = new Map<string, Loading>();
  readonly #domains = new Set<number>();
  readonly #destroyed = new Set<string>();
  readonly #destroyListeners: ((loaded: LoadedModel) => void)[] = [];
  #generated = 0;
  #defaultDomain: number | undefined;
  /** Set by closeLoading: every later rkllm_init is refused with it. */
  #closedWith: RkllmError | undefined;
  /** Told of every rkllm_init that ended: how long it took and whether the model loaded (the load-time metric). */
  readonly #loadListeners: ((handle: string, seconds: number, ok: boolean) => void)[] = [];

  constructor(runtime: RuntimePort, limits: ModelLimits) {
    this.#runtime = runtime;
    this.#limits = limits;
  }

  get size(): number {
    return this.#loaded.size;
  }

  onLoadEnded(listener: (handle: string, seconds: number, ok: boolean) => void): void {
    this.#loadListeners.push(listener);
  }

  #loadEnded(handle: string, startedAt: number, ok: boolean): void {
    const seconds = (performance.now() - startedAt) / 1000;
    for (const listener of this.#loadListeners) listener(handle, seconds, ok);
  }

  /** rkllm_init calls in flight. */
  get loading(): number {
    return this.#loading.size;
  }

  all(): LoadedModel[] {
    return [...this.#loaded.values()];
  }

  /** The model a request names, or the only one when it names none. */
  resolve(handle: string | undefined): LoadedModel {
    if (handle === undefined) {
      if (this.#loaded.size === 1) return this.#loaded.values().next().value as LoadedModel;
      if (this.#loaded.size === 0) throw new RkllmError('no model is loaded; load one with rkllm_init', 'NO_MODEL');
      throw invalidArgument('handle', `required: ${this.#loaded.size} models are loaded (${[...this.#loaded.keys()].join(', ')})`);
    }
    const loaded = this.#loaded.get(handle);
    if (loaded) return loaded;
    if (this.#destroyed.has(handle)) throw new RkllmError(`the model '${handle}' was destroyed`, 'MODEL_DESTROYED');
    throw new RkllmError(`no model is loaded under the handle '${handle}'`, 'UNKNOWN_HANDLE', { facts: { handle } });
  }

  /** rkllm_init. `param` was checked against the schema and its paths confined by the caller. */
  load(param: PartialParam, requestedHandle?: string, settings?: ResolvedModelSettings): Promise<LoadedModel> {
    if (this.#closedWith) return Promise.reject(this.#closedWith);
    const refused = this.#admissionError();
    if (refused) return Promise.reject(refused);
    const handle = requestedHandle ?? this.#generateHandle();
    if (this.#loaded.has(handle) || this.#loading.has(handle)) {
      return Promise.reject(
        new RkllmError(`the handle '${handle}' is taken; destroy that model first or choose another handle`, 'HANDLE_IN_USE', {
          facts: { handle },
        }),
      );
    }
    const asked = this.#askedDomain(param.extend_param);
    if (asked !== undefined && this.#domains.has(asked)) {
      return Promise.reject(
        new RkllmError(`base_domain_id ${asked} is used by another model; leave it out to get a free one`, 'DOMAIN_IN_USE', {
          facts: { base_domain_id: asked },
        }),
      );
    }
    const domain = asked ?? this.#lowestFreeDomain();
    this.#domains.add(domain);

    let abandonedWith: RkllmError | undefined;
    let answerNow!: (error: RkllmError) => void;
    const abandoned = new Promise<never>((_, reject) => (answerNow = reject));
    abandoned.catch(() => undefined);
    const startedAt = performance.now();
    const settled = this.#runtime.loadModel({ ...param, extend_param: { ...param.extend_param, base_domain_id: domain } }).then(
      (model): LoadedModel | Promise<never> => {
        this.#loading.delete(handle);
        this.#loadEnded(handle, startedAt, true);
        if (abandonedWith) return this.#discard(model, domain, abandonedWith);
        const loaded: LoadedModel = { handle, model, domain, scheduler: new Scheduler(model, this.#limits), param, settings };
        this.#loaded.set(handle, loaded);
        this.#destroyed.delete(handle);
        return loaded;
      },
      (error: unknown) => {
        this.#loading.delete(handle);
        this.#domains.delete(domain);
        this.#loadEnded(handle, startedAt, false);
        throw error;
      },
    );
    this.#loading.set(handle, {
      abandon: (error) => {
        abandonedWith = error;
        answerNow(error);
      },
      ended: settled.then(
        () => undefined,
        () => undefined,
      ),
    });
    return Promise.race([settled, abandoned]);
  }

  /**
   * Shutdown: refuses every later rkllm_init with `error`, answers those in flight with it at
   * once, and resolves when their native inits have ended and their models are destroyed (the
   * caller bounds the wait: a real rkllm_init can take a minute).
   */
  closeLoading(error: RkllmError): Promise<void> {
    this.#closedWith = error;
    const inFlight = [...this.#loading.values()];
    for (const loading of inFlight) loading.abandon(error);
    return Promise.all(inFlight.map((loading) => loading.ended)).then(() => undefined);
  }

  /** A model whose caller was answered before it loaded: destroyed, never registered. */
  async #discard(model: ModelPort, domain: number, error: RkllmError): Promise<never> {
    try {
      await model.destroy();
    } catch {
      // Its rkllm_destroy failing changes nothing for anyone: the caller has had its answer.
    } finally {
      this.#domains.delete(domain);
    }
    throw error;
  }

  /** TOO_MANY_MODELS when one more rkllm_init would pass a limit, else undefined. */
  #admissionError(): RkllmError | undefined {
    const { maxLoadedModels, maxLoadingModels } = this.#limits;
    const held = this.#loaded.size + this.#loading.size;
    if (held >= maxLoadedModels) {
      return new RkllmError(
        `${this.#loaded.size} models are loaded and ${this.#loading.size} loading, the server's limit of ${maxLoadedModels} ` +
          '(--max-loaded-models); destroy one with rkllm_destroy first',
        'TOO_MANY_MODELS',
        { facts: { limit: maxLoadedModels, flag: '--max-loaded-models' } },
      );
    }
    if (this.#loading.size >= maxLoadingModels) {
      return new RkllmError(
        `${this.#loading.size} rkllm_init calls are already in flight, the server's limit of ${maxLoadingModels} ` +
          '(--max-loading-models); try again when one has finished',
        'TOO_MANY_MODELS',
        { facts: { limit: maxLoadingModels, flag: '--max-loading-models' } },
      );
    }
    return undefined;
  }

  /** Called once for every model destroyed (rkllm_destroy, unload, shutdown), as it goes. */
  onDestroyed(listener: (loaded: LoadedModel) => void): void {
    this.#destroyListeners.push(listener);
  }

  /** rkllm_destroy: the handle is gone at once; its requests end; resolves to the C return code. */
  async destroy(loaded: LoadedModel, reason: EndReason = 'model_destroyed'): Promise<number> {
    if (this.#loaded.get(loaded.handle) !== loaded) throw new RkllmError(`the model '${loaded.handle}' was destroyed`, 'MODEL_DESTROYED');
    this.#loaded.delete(loaded.handle);
    this.#destroyed.add(loaded.handle);
    if (this.#destroyed.size > REMEMBERED_DESTROYED) this.#destroyed.delete(this.#destroyed.values().next().value as string);
    loaded.scheduler.close(reason);
    for (const listener of this.#destroyListeners) listener(loaded);
    try {
      return loaded.model.destroyed ? 0 : await loaded.model.destroy();
    } finally {
      this.#domains.delete(loaded.domain);
    }
  }

  #generateHandle(): string {
    let handle: string;
    do handle = `model-${++this.#generated}`;
    while (this.#loaded.has(handle) || this.#loading.has(handle));
    return handle;
  }

  /**
   * The domain the caller chose, or undefined to take the lowest free one. C programmers start
   * from rkllm_createDefaultParam and change what they mean to, so an extend_param given whole
   * with base_domain_id still at the runtime's default value names no domain: it is the default
   * passed back untouched. A base_domain_id that differs from the default, or one written in a
   * partial extend_param, is the caller's choice.
   */
  #askedDomain(extend: PartialParam['extend_param']): number | undefined {
    const asked = extend?.base_domain_id;
    if (asked === undefined) return undefined;
    this.#defaultDomain ??= this.#runtime.createDefaultParam().extend_param.base_domain_id;
    if (asked !== this.#defaultDomain) return asked;
    const whole = membersIn(ExtendParam, this.#runtime.info.abi).every((member) => (extend as Record<string, unknown>)[member] !== undefined);
    return whole ? undefined : asked;
  }

  #lowestFreeDomain(): number {
    let domain = 0;
    while (this.#domains.has(domain)) domain++;
    return domain;
  }
}
