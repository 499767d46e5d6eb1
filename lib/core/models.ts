// Loaded models by handle. The start-up model is "default"; rkllm_init adds more under a
// client-chosen or generated handle ("model-N"), each on its own extend_param.base_domain_id
// (the lowest free one unless the client names one). Handles and domains are reserved while
// rkllm_init runs, so two concurrent inits cannot take the same one.

import { RkllmError, invalidArgument } from '../errors';
import type { PartialParam } from '../runtime/param';
import type { EndReason } from './job';
import type { ModelPort, RuntimePort } from './model-port';
import { Scheduler, type SchedulerLimits } from './scheduler';

export interface LoadedModel {
  readonly handle: string;
  readonly model: ModelPort;
  readonly domain: number;
  readonly scheduler: Scheduler;
}

/** Handles destroyed recently, remembered so a late request gets "destroyed", not "unknown". */
const REMEMBERED_DESTROYED = 256;

export class ModelRegistry {
  readonly #runtime: RuntimePort;
  readonly #limits: SchedulerLimits;
  readonly #loaded = new Map<string, LoadedModel>();
  readonly #loading = new Set<string>();
  readonly #domains = new Set<number>();
  readonly #destroyed = new Set<string>();
  #generated = 0;

  constructor(runtime: RuntimePort, limits: SchedulerLimits) {
    this.#runtime = runtime;
    this.#limits = limits;
  }

  get size(): number {
    return this.#loaded.size;
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
  async load(param: PartialParam, requestedHandle?: string): Promise<LoadedModel> {
    const handle = requestedHandle ?? this.#generateHandle();
    if (this.#loaded.has(handle) || this.#loading.has(handle)) {
      throw new RkllmError(`the handle '${handle}' is taken; destroy that model first or choose another handle`, 'HANDLE_IN_USE', {
        facts: { handle },
      });
    }
    const asked = param.extend_param?.base_domain_id;
    if (asked !== undefined && this.#domains.has(asked)) {
      throw new RkllmError(`base_domain_id ${asked} is used by another model; leave it out to get a free one`, 'DOMAIN_IN_USE', {
        facts: { base_domain_id: asked },
      });
    }
    const domain = asked ?? this.#lowestFreeDomain();
    this.#loading.add(handle);
    this.#domains.add(domain);
    try {
      const model = await this.#runtime.loadModel({ ...param, extend_param: { ...param.extend_param, base_domain_id: domain } });
      const loaded: LoadedModel = { handle, model, domain, scheduler: new Scheduler(model, this.#limits) };
      this.#loaded.set(handle, loaded);
      this.#destroyed.delete(handle);
      return loaded;
    } catch (error) {
      this.#domains.delete(domain);
      throw error;
    } finally {
      this.#loading.delete(handle);
    }
  }

  /** rkllm_destroy: the handle is gone at once; its requests end; resolves to the C return code. */
  async destroy(loaded: LoadedModel, reason: EndReason = 'model_destroyed'): Promise<number> {
    if (this.#loaded.get(loaded.handle) !== loaded) throw new RkllmError(`the model '${loaded.handle}' was destroyed`, 'MODEL_DESTROYED');
    this.#loaded.delete(loaded.handle);
    this.#destroyed.add(loaded.handle);
    if (this.#destroyed.size > REMEMBERED_DESTROYED) this.#destroyed.delete(this.#destroyed.values().next().value as string);
    loaded.scheduler.close(reason);
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

  #lowestFreeDomain(): number {
    let domain = 0;
    while (this.#domains.has(domain)) domain++;
    return domain;
  }
}
