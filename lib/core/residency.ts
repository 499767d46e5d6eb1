// Load on demand: a request that names a catalog model which is not loaded loads it, then runs;
// the model stays for its keep-alive after its last request ends (0: unloaded as soon as it is
// idle; -1: never), then it is unloaded. --max-loaded-models bounds every model of the registry
// (rkllm_init's too): to make room, the least recently used idle model this file loaded is
// unloaded; a model with work queued or running never is, nor one kept forever, nor one a
// client loaded with rkllm_init (its client holds it by handle). With nothing idle to unload, a
// load waits, bounded, for a model to go idle.
//
// Everything here goes through the ModelRegistry (and so RuntimePort.loadModel), so it works the
// same whether a model lives in this process or in a host of its own.

import * as path from 'path';
import type { Logger } from 'pino';
import { RkllmError } from '../errors';
import type { Catalog, CatalogEntry, ModelListing } from './catalog';
import { applyChatTemplate, resolveChatTemplate } from './chat-templates';
import type { Job } from './job';
import { KEEP_FOREVER, paramOf } from './model-settings';
import type { LoadedModel, ModelRegistry } from './models';

/** How long a load waits for a model to go idle when every slot is busy. */
export const ROOM_WAIT_MS = 60_000;
/** A busy model's keep-alive, or a wait for room, looks again this often. */
const RECHECK_MS = 50;

interface Resident {
  readonly entry: CatalogEntry;
  loaded: LoadedModel | undefined;
  /** Settles when the load (and its LoRA adapters) has ended. */
  loading: Promise<LoadedModel> | undefined;
  /** Requests submitted and not yet settled. */
  active: number;
  lastUsed: number;
  /** A request's keep_alive (Ollama's), over the entry's own until the next request sets another. */
  keepAliveMs: number | undefined;
  timer: NodeJS.Timeout | undefined;
}

export interface ResidencyLimits {
  readonly maxLoadedModels: number;
  /** Bound on a load's wait for room (default ROOM_WAIT_MS). */
  readonly roomWaitMs?: number;
}

export class Residency {
  readonly #registry: ModelRegistry;
  readonly #catalog: Catalog;
  readonly #logger: Logger;
  readonly #limits: ResidencyLimits;
  /** By registry handle. */
  readonly #residents = new Map<string, Resident>();
  /** Slots claimed by loads that have not reached the registry yet. */
  #claimed = 0;
  #waiters: (() => void)[] = [];
  #closed = false;

  constructor(registry: ModelRegistry, catalog: Catalog, logger: Logger, limits: ResidencyLimits) {
    this.#registry = registry;
    this.#catalog = catalog;
    this.#logger = logger;
    this.#limits = limits;
  }

  /** The model a request names, loaded now if it is not (UNKNOWN_HANDLE listing the names when the catalog has none by that name). */
  async acquire(name: string, signal?: AbortSignal): Promise<LoadedModel> {
    const entry = await this.#catalog.find(name);
    if (!entry) {
      // A model a client loaded with rkllm_init is named by its handle.
      const byHandle = this.#registry.all().find((loaded) => loaded.handle === name);
      if (byHandle) return byHandle;
      const names = await this.names();
      throw new RkllmError(`the model '${name}' does not exist; the models are: ${names.join(', ') || '(none)'}`, 'UNKNOWN_HANDLE', {
        facts: { handle: name, models: names },
      });
    }
    const loaded = await this.#residentWithRetry(entry, signal);
    this.#touch(loaded);
    // A request that fails before it submits a run must not keep the model forever: the timer is
    // armed once this turn is over unless a run has been submitted by then.
    setImmediate(() => this.#armIfIdle(entry.handle));
    return loaded;
  }

  /** Loads the start-up model; refused like any load when the registry refuses it. */
  async loadStartup(entry: CatalogEntry): Promise<LoadedModel> {
    const loaded = await this.#residentFor(entry);
    this.#armIfIdle(entry.handle);
    return loaded;
  }

  /** Every name a request may use: the catalog's and the handles of rkllm_init's models. */
  async names(): Promise<string[]> {
    return (await this.listing()).map((model) => model.name);
  }

  /** The catalog, then every model loaded with rkllm_init, as the listings show them. */
  async listing(): Promise<ModelListing[]> {
    const listed: ModelListing[] = (await this.#catalog.entries()).map((entry) => {
      const resident = this.#residents.get(entry.handle);
      const loaded = resident?.loaded !== undefined && this.#isRegistered(resident.loaded);
      return {
        name: entry.name,
        aliases: entry.names.slice(1),
        source: entry.source,
        file: entry.file,
        loaded,
        handle: loaded ? entry.handle : undefined,
        context_length: entry.settings.max_context_len,
        keep_alive_ms: resident ? this.#keepAliveOf(resident) : entry.settings.keep_alive_ms,
        ...(loaded && resident ? { idle_since: resident.active > 0 ? undefined : resident.lastUsed } : {}),
      };
    });
    for (const loaded of this.#registry.all()) {
      if (this.#ownedBy(loaded)) continue;
      listed.push({ name: loaded.handle, aliases: [], source: 'rkllm_init', file: undefined, loaded: true, handle: loaded.handle, context_length: undefined, keep_alive_ms: undefined });
    }
    return listed;
  }

  /** The names of the catalog models whose load is under way (waiting for room included). */
  loadingNames(): string[] {
    return [...this.#residents.values()].filter((resident) => resident.loading !== undefined).map((resident) => resident.entry.name);
  }

  /** The catalog entry a loaded model was loaded from; undefined for rkllm_init's models. */
  entryOf(loaded: LoadedModel): CatalogEntry | undefined {
    return this.#ownedBy(loaded)?.entry;
  }

  /**
   * A request's own keep-alive for the model it ran on (Ollama's keep_alive): it holds from now
   * until another request sets one (undefined: back to the model's own); 0 unloads the model once it is idle.
   */
  setKeepAlive(loaded: LoadedModel, ms: number | undefined): void {
    const resident = this.#ownedBy(loaded);
    if (!resident) return;
    resident.keepAliveMs = ms;
    // A timer armed with the old keep-alive must not unload it (it may now be kept forever).
    this.#clearTimer(resident);
    this.#armIfIdle(resident.entry.handle);
  }

  /** A run submitted on a model: it is in use until the job settles. */
  noteRun(loaded: LoadedModel, job: Job): void {
    const resident = this.#ownedBy(loaded);
    if (!resident) return;
    resident.active += 1;
    this.#clearTimer(resident);
    void job.done.then(() => {
      resident.active -= 1;
      resident.lastUsed = Date.now();
      this.#armIfIdle(resident.entry.handle);
      this.#wake();
    });
  }

  /**
   * rkllm_init shares --max-loaded-models: at the limit, the least recently used idle model
   * loaded on demand is unloaded first. Never waits; when nothing can go, the registry refuses
   * the init as before (TOO_MANY_MODELS).
   */
  async makeRoomForInit(): Promise<void> {
    if (!this.#full()) return;
    const victim = this.#idleVictim();
    if (victim) await this.#unload(victim, 'to make room for rkllm_init');
  }

  /** Shutdown: no more keep-alive timers; waiting loads give up. */
  close(): void {
    this.#closed = true;
    for (const resident of this.#residents.values()) this.#clearTimer(resident);
    this.#wake();
  }

  #ownedBy(loaded: LoadedModel): Resident | undefined {
    const resident = this.#residents.get(loaded.handle);
    return resident?.loaded === loaded ? resident : undefined;
  }

  /** A load this request joined, given up because the request that started it went away, is started again for this one. */
  async #residentWithRetry(entry: CatalogEntry, signal: AbortSignal | undefined): Promise<LoadedModel> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.#residentFor(entry, signal);
      } catch (error) {
        const givenUpForAnother = error instanceof RkllmError && error.code === 'REQUEST_CANCELLED' && signal?.aborted !== true;
        if (!givenUpForAnother || attempt >= 3) throw error;
      }
    }
  }

  /** `signal`: the asker went away; a load still waiting for room gives up (one under way goes on: others may want it). */
  #residentFor(entry: CatalogEntry, signal?: AbortSignal): Promise<LoadedModel> {
    const existing = this.#residents.get(entry.handle);
    if (existing?.loaded && this.#isRegistered(existing.loaded)) return Promise.resolve(existing.loaded);
    if (existing?.loading) return existing.loading;
    const resident: Resident = { entry, loaded: undefined, loading: undefined, active: 0, lastUsed: Date.now(), keepAliveMs: undefined, timer: undefined };
    this.#residents.set(entry.handle, resident);
    resident.loading = this.#load(resident, signal).then(
      (loaded) => {
        resident.loaded = loaded;
        resident.loading = undefined;
        return loaded;
      },
      (error: unknown) => {
        if (this.#residents.get(entry.handle) === resident) this.#residents.delete(entry.handle);
        this.#wake();
        throw error;
      },
    );
    return resident.loading;
  }

  async #load(resident: Resident, signal: AbortSignal | undefined): Promise<LoadedModel> {
    const { entry } = resident;
    await this.#claimRoom(entry, signal);
    const started = Date.now();
    const pending = this.#registry.load(paramOf(entry.settings, entry.modelPath), entry.handle, entry.settings);
    // The registry counts it as loading from here on (or has refused it already).
    this.#claimed -= 1;
    const loaded = await pending.catch((error: unknown) => {
      throw this.#explainLoadFailure(entry, error);
    });
    this.#logger.info({ handle: entry.handle, model: entry.file, ms: Date.now() - started, max_context_len: entry.settings.max_context_len }, 'model loaded');
    for (const adapter of entry.settings.lora ?? []) {
      const adapterPath = path.resolve(entry.directory, adapter.path);
      const name = adapter.name ?? path.basename(adapter.path).replace(/\.rkllm$/i, '');
      try {
        await loaded.model.loadLora({ lora_adapter_path: adapterPath, lora_adapter_name: name, scale: adapter.scale ?? 1 });
      } catch (error) {
        await this.#registry.destroy(loaded).catch(() => undefined);
        const detail = error instanceof Error ? error.message : String(error);
        throw new RkllmError(`the model '${entry.name}' loaded, but its LoRA adapter '${adapter.path}' did not (${detail}); fix "lora" in its settings`, 'MODEL_INIT_FAILED');
      }
    }
    // A template set by setting holds for every caller (JSON-RPC runs too), not only for chats.
    const template = entry.settings.chat_template === undefined ? undefined : resolveChatTemplate(entry.settings.chat_template, entry.name);
    if (template) {
      try {
        await applyChatTemplate(loaded.model, template, undefined);
      } catch (error) {
        await this.#registry.destroy(loaded).catch(() => undefined);
        const detail = error instanceof Error ? error.message : String(error);
        throw new RkllmError(`the model '${entry.name}' loaded, but its chat template could not be set (${detail}); fix "chat_template" in its settings`, 'MODEL_INIT_FAILED');
      }
    }
    return loaded;
  }

  /** A context the runtime refuses is the likeliest cause of a failed init a setting can fix: say which. */
  #explainLoadFailure(entry: CatalogEntry, error: unknown): unknown {
    if (!(error instanceof RkllmError) || error.code !== 'MODEL_INIT_FAILED') return error;
    return new RkllmError(
      `${error.message}. If the model was converted for a shorter context than ${entry.settings.max_context_len} tokens, ` +
        `lower max_context_len in its settings (--ctx-size for the start-up model) to what it was converted with`,
      'MODEL_INIT_FAILED',
      { ...error.details(), facts: { ...error.facts, model: entry.name, max_context_len: entry.settings.max_context_len, setting: 'max_context_len' } },
    );
  }

  #full(): boolean {
    return this.#registry.size + this.#registry.loading + this.#claimed >= this.#limits.maxLoadedModels;
  }

  /** Resolves holding one slot (this.#claimed), unloading the least recently used idle model if it must. */
  async #claimRoom(entry: CatalogEntry, signal: AbortSignal | undefined): Promise<void> {
    const deadline = Date.now() + (this.#limits.roomWaitMs ?? ROOM_WAIT_MS);
    for (;;) {
      if (this.#closed) throw new RkllmError('the server is shutting down; the model was not loaded', 'SHUTTING_DOWN');
      if (signal?.aborted) throw new RkllmError(`the request went away while '${entry.name}' waited for room to load`, 'REQUEST_CANCELLED');
      if (!this.#full()) {
        this.#claimed += 1;
        return;
      }
      const victim = this.#idleVictim();
      if (victim) {
        // The slot it frees is this load's: claimed before the unload, so no other load takes it meanwhile.
        this.#claimed += 1;
        try {
          await this.#unload(victim, `to make room for '${entry.name}'`);
        } catch (error) {
          this.#claimed -= 1;
          throw error;
        }
        return;
      }
      if (!this.#anyEvictable()) {
        const { maxLoadedModels } = this.#limits;
        throw new RkllmError(
          `${this.#registry.size} models are loaded and none can be unloaded to load '${entry.name}' (the limit is ${maxLoadedModels}, --max-loaded-models; ` +
            'models loaded with rkllm_init or kept with keep_alive -1 stay)',
          'TOO_MANY_MODELS',
          { facts: { limit: maxLoadedModels, flag: '--max-loaded-models' } },
        );
      }
      if (Date.now() >= deadline) {
        throw new RkllmError(
          `every loaded model stayed busy for ${this.#limits.roomWaitMs ?? ROOM_WAIT_MS} ms, so '${entry.name}' could not be loaded (--max-loaded-models ${this.#limits.maxLoadedModels})`,
          'TOO_MANY_MODELS',
          { facts: { limit: this.#limits.maxLoadedModels, flag: '--max-loaded-models' } },
        );
      }
      await this.#waitForChange(Math.min(RECHECK_MS * 4, Math.max(1, deadline - Date.now())));
    }
  }

  #evictable(resident: Resident): boolean {
    return resident.loaded !== undefined && this.#isRegistered(resident.loaded) && this.#keepAliveOf(resident) !== KEEP_FOREVER;
  }

  #isIdle(resident: Resident): boolean {
    const scheduler = resident.loaded?.scheduler;
    return resident.active === 0 && scheduler !== undefined && scheduler.running === 0 && scheduler.queued === 0;
  }

  #anyEvictable(): boolean {
    return [...this.#residents.values()].some((resident) => this.#evictable(resident));
  }

  #idleVictim(): Resident | undefined {
    let victim: Resident | undefined;
    for (const resident of this.#residents.values()) {
      if (!this.#evictable(resident) || !this.#isIdle(resident)) continue;
      if (!victim || resident.lastUsed < victim.lastUsed) victim = resident;
    }
    return victim;
  }

  async #unload(resident: Resident, why: string): Promise<void> {
    const loaded = resident.loaded;
    this.#clearTimer(resident);
    if (this.#residents.get(resident.entry.handle) === resident) this.#residents.delete(resident.entry.handle);
    if (!loaded || !this.#isRegistered(loaded)) return;
    this.#logger.info({ handle: loaded.handle, reason: why }, 'model unloaded');
    try {
      await this.#registry.destroy(loaded);
    } finally {
      this.#wake();
    }
  }

  #isRegistered(loaded: LoadedModel): boolean {
    return this.#registry.all().includes(loaded);
  }

  #touch(loaded: LoadedModel): void {
    const resident = this.#ownedBy(loaded);
    if (!resident) return;
    resident.lastUsed = Date.now();
    this.#clearTimer(resident);
  }

  /** Starts the keep-alive of an idle model; a busy one is looked at again shortly. */
  #armIfIdle(handle: string): void {
    const resident = this.#residents.get(handle);
    if (!resident || this.#closed || resident.active > 0 || !resident.loaded) return;
    const keepAlive = this.#keepAliveOf(resident);
    if (keepAlive === KEEP_FOREVER) return;
    this.#clearTimer(resident);
    const idleFor = Date.now() - resident.lastUsed;
    const wait = this.#isIdle(resident) ? Math.max(0, keepAlive - idleFor) : RECHECK_MS;
    resident.timer = setTimeout(() => {
      resident.timer = undefined;
      if (this.#closed || this.#residents.get(handle) !== resident || resident.active > 0) return;
      if (!this.#isIdle(resident) || Date.now() - resident.lastUsed < keepAlive) {
        this.#armIfIdle(handle);
        return;
      }
      this.#unload(resident, 'keep-alive ended').catch((error: unknown) => this.#logger.warn({ handle, err: error }, 'unloading an idle model failed'));
    }, wait);
    resident.timer.unref();
  }

  #keepAliveOf(resident: Resident): number {
    return resident.keepAliveMs ?? resident.entry.settings.keep_alive_ms;
  }

  #clearTimer(resident: Resident): void {
    if (resident.timer) clearTimeout(resident.timer);
    resident.timer = undefined;
  }

  #waitForChange(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      timer.unref();
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.#waiters.push(done);
    });
  }

  #wake(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const waiter of waiters) waiter();
  }
}
