// The runtime as the server holds it: never in its own process. Opening it starts a host that
// opens the library and reports what it is (info, defaults); that host is then kept as the
// spare, the host the next loadModel takes, so a model loads without waiting for a process to
// start and without starting one at a moment of scarcity (a thread limit reached). Each model
// lives in a host of its own (HostModel); a load that succeeded starts the next spare, and a
// host whose rkllm_init failed cleanly becomes the spare again. The core sees a RuntimePort, as
// with the in-process Runtime.

import type { Logger } from 'pino';
import { RkllmError } from '../errors';
import type { NativeRuntimeInfo, RKLLMParam } from '../native/binding';
import { RKLLM_CONSTANTS, type RkllmConstants } from '../runtime/constants';
import type { PartialParam } from '../runtime/param';
import type { OpenRuntimeOptions } from '../runtime/runtime';
import { HostModel, type HostStatus } from './host-model';
import { HostProcess, type HostEvents, type HostFailure } from './host-process';
import type { WireError } from './protocol';
import type { HostSettings } from './settings';

const SPARE_TAG = { spare: true };

function openFailure(failure: HostFailure): RkllmError {
  return new RkllmError(`opening the runtime in a model host failed: ${failure.detail}`, 'RUNTIME_FAILED', {
    facts: { reason: failure.reason, signal: failure.signal ?? null, exit_code: failure.exitCode ?? null, restarting: false },
  });
}

interface Spare {
  host: HostProcess;
  /** True once its runtime is open; false when that failed. */
  opened: Promise<boolean>;
}

export class HostRuntime {
  readonly info: NativeRuntimeInfo;
  readonly constants: RkllmConstants = RKLLM_CONSTANTS;
  readonly #defaults: RKLLMParam;
  readonly #open: OpenRuntimeOptions;
  readonly #settings: HostSettings;
  readonly #logger: Logger;
  #spare: Spare | undefined;
  #closed = false;

  private constructor(info: NativeRuntimeInfo, defaults: RKLLMParam, open: OpenRuntimeOptions, settings: HostSettings, logger: Logger) {
    this.info = info;
    this.#defaults = defaults;
    this.#open = open;
    this.#settings = settings;
    this.#logger = logger;
  }

  /** Opens the runtime in a host (kept as the spare); rejects with the error openRuntime would have thrown. */
  static async open(open: OpenRuntimeOptions, settings: HostSettings, logger: Logger): Promise<HostRuntime> {
    const events: { runtime?: HostRuntime } = {};
    const first = new HostProcess(settings, HostRuntime.#spareEvents(events), logger, SPARE_TAG);
    let reply;
    try {
      reply = await first.call('open', [open]);
    } catch (error) {
      await first.end(1000);
      throw error;
    }
    if (!reply.ok) {
      await first.end(1000);
      const error: WireError = reply.error ?? { message: 'the runtime could not be opened', code: 'RUNTIME_LOAD_FAILED' };
      throw new RkllmError(error.message, error.code as RkllmError['code'], { field: error.field, reason: error.reason, facts: error.facts });
    }
    const { info, defaults } = reply.value as { info: NativeRuntimeInfo; defaults: RKLLMParam };
    const runtime = new HostRuntime(info, defaults, open, settings, logger);
    events.runtime = runtime;
    runtime.#spare = { host: first, opened: Promise.resolve(true) };
    return runtime;
  }

  /** A spare has nothing in flight; a spare that dies is dropped (the next load starts its own host). */
  static #spareEvents(owner: { runtime?: HostRuntime }): HostEvents {
    return {
      onTokens: () => undefined,
      onEnd: () => undefined,
      onFailure: (failure) => {
        const runtime = owner.runtime;
        if (runtime && runtime.#spare?.host.hasFailed) runtime.#spare = undefined;
        return openFailure(failure);
      },
    };
  }

  /** The runtime's own rkllm_createDefaultParam, as the first host reported it (a fresh copy). */
  createDefaultParam(): RKLLMParam {
    return structuredClone(this.#defaults);
  }

  /** Loads the model in the spare host, or in a new one when there is none. */
  async loadModel(param: PartialParam): Promise<HostModel> {
    const spare = await this.#takeSpare();
    const model = await HostModel.load(param, this.#open, this.#settings, this.#logger, spare, (host) => this.#giveBack(host));
    this.#refill();
    return model;
  }

  /** The host of a model this runtime loaded (undefined for any other, or once destroyed). */
  hostStatus(model: unknown): HostStatus | undefined {
    return model instanceof HostModel && !model.destroyed ? model.status() : undefined;
  }

  /** Ends the spare host; later loads start none. The models' hosts end with the models. */
  async close(): Promise<void> {
    this.#closed = true;
    const spare = this.#spare;
    this.#spare = undefined;
    await spare?.host.end(1000);
  }

  async #takeSpare(): Promise<HostProcess | undefined> {
    const spare = this.#spare;
    this.#spare = undefined;
    if (!spare) return undefined;
    if ((await spare.opened) && !spare.host.hasFailed && !spare.host.hasExited) return spare.host;
    void spare.host.end(1000);
    return undefined;
  }

  /** A host whose rkllm_init failed cleanly: the spare again, unless there is one. */
  #giveBack(host: HostProcess): boolean {
    if (this.#closed || this.#spare) return false;
    host.bind(HostRuntime.#spareEvents({ runtime: this }), SPARE_TAG);
    this.#spare = { host, opened: Promise.resolve(true) };
    return true;
  }

  #refill(): void {
    if (this.#closed || this.#spare) return;
    const host = new HostProcess(this.#settings, HostRuntime.#spareEvents({ runtime: this }), this.#logger, SPARE_TAG);
    const opened = host.call('open', [this.#open]).then(
      (reply) => reply.ok,
      () => false,
    );
    this.#spare = { host, opened };
    void opened.then((ok) => {
      if (ok) return;
      this.#logger.warn({ host_pid: host.pid }, 'a spare model host could not open the runtime; the next load starts its own');
      if (this.#spare?.host === host) this.#spare = undefined;
      void host.end(1000);
    });
  }
}
