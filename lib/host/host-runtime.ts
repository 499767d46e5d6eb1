// The runtime as the server holds it: never in its own process. Opening it runs a short-lived
// host that opens the library, reports what it is (info, defaults) and exits; each loadModel
// starts a host of its own for that model (HostModel). The core sees a RuntimePort, as with the
// in-process Runtime.

import type { Logger } from 'pino';
import { RkllmError } from '../errors';
import type { NativeRuntimeInfo, RKLLMParam } from '../native/binding';
import { RKLLM_CONSTANTS, type RkllmConstants } from '../runtime/constants';
import type { PartialParam } from '../runtime/param';
import type { OpenRuntimeOptions } from '../runtime/runtime';
import { HostModel, type HostStatus } from './host-model';
import { HostProcess, type HostFailure } from './host-process';
import type { WireError } from './protocol';
import type { HostSettings } from './settings';

function openFailure(failure: HostFailure): RkllmError {
  return new RkllmError(`opening the runtime in a model host failed: ${failure.detail}`, 'RUNTIME_FAILED', {
    facts: { reason: failure.reason, signal: failure.signal ?? null, exit_code: failure.exitCode ?? null, restarting: false },
  });
}

export class HostRuntime {
  readonly info: NativeRuntimeInfo;
  readonly constants: RkllmConstants = RKLLM_CONSTANTS;
  readonly #defaults: RKLLMParam;
  readonly #open: OpenRuntimeOptions;
  readonly #settings: HostSettings;
  readonly #logger: Logger;

  private constructor(info: NativeRuntimeInfo, defaults: RKLLMParam, open: OpenRuntimeOptions, settings: HostSettings, logger: Logger) {
    this.info = info;
    this.#defaults = defaults;
    this.#open = open;
    this.#settings = settings;
    this.#logger = logger;
  }

  /** Opens the runtime in a probe host; rejects with the error openRuntime would have thrown. */
  static async open(open: OpenRuntimeOptions, settings: HostSettings, logger: Logger): Promise<HostRuntime> {
    const probe = new HostProcess(
      settings,
      { onTokens: () => undefined, onEnd: () => undefined, onFailure: openFailure },
      logger,
      { probe: true },
    );
    try {
      const reply = await probe.call('open', [open]);
      if (!reply.ok) {
        const error: WireError = reply.error ?? { message: 'the runtime could not be opened', code: 'RUNTIME_LOAD_FAILED' };
        throw new RkllmError(error.message, error.code as RkllmError['code'], { field: error.field, reason: error.reason, facts: error.facts });
      }
      const { info, defaults } = reply.value as { info: NativeRuntimeInfo; defaults: RKLLMParam };
      return new HostRuntime(info, defaults, open, settings, logger);
    } finally {
      await probe.end(1000);
    }
  }

  /** The runtime's own rkllm_createDefaultParam, as the probe host reported it (a fresh copy). */
  createDefaultParam(): RKLLMParam {
    return structuredClone(this.#defaults);
  }

  /** Starts a host for the model and loads it there. */
  async loadModel(param: PartialParam): Promise<HostModel> {
    return HostModel.load(param, this.#open, this.#settings, this.#logger);
  }

  /** The host of a model this runtime loaded (undefined for any other, or once destroyed). */
  hostStatus(model: unknown): HostStatus | undefined {
    return model instanceof HostModel && !model.destroyed ? model.status() : undefined;
  }
}
