// An opened librkllmrt (real or emulated): its defaults, its constants, and loading models on it.

import type { AbiName, AbiSetting, NativeRuntime, NativeRuntimeInfo, RKLLMParam } from '../native/binding';
import { loadNative } from '../native/load';
import { ABI_SETTINGS, RELEASE_ABIS, type ReleaseName } from '../native/structs';
import { argumentError } from './argument-error';
import { captureCallSite, withCallSite } from './call-site';
import { RKLLM_CONSTANTS, type RkllmConstants } from './constants';
import { DEFAULT_SIM_ABI, SIM_RUNTIME, emulatedRuntimePath, resolveModelPath } from './emulated';
import { Model } from './model';
import { buildParam, type PartialParam } from './param';

export interface OpenRuntimeOptions {
  /** A library path, a bare name for the dynamic loader's search, or 'sim' for the emulated
   * runtime. Default: $RKLLM_RUNTIME, else 'librkllmrt.so'. */
  path?: string;
  /** Forces the ABI (needed for a library that is neither emulated nor a known release): an ABI
   * name or a release number (AbiSetting); with 'sim' it picks which emulated build to open. */
  abi?: AbiSetting;
}

const DEFAULT_RUNTIME = 'librkllmrt.so';
const RELEASE_NUMBER = /^\d+\.\d+\.\d+/;

/** What a wrong abi option is told: the release numbers when it looks like one, else the ABIs. */
function abiExpected(abi: unknown): string {
  if (typeof abi === 'string' && RELEASE_NUMBER.test(abi)) {
    return `expected a release number of ${Object.keys(RELEASE_ABIS).join(', ')}, got ${JSON.stringify(abi)}`;
  }
  return `expected '1.2' or '1.3', got ${JSON.stringify(abi)}`;
}

/** The emulated build that speaks what `abi` names. */
function emulatedAbi(abi: AbiSetting): AbiName {
  return Object.prototype.hasOwnProperty.call(RELEASE_ABIS, abi) ? RELEASE_ABIS[abi as ReleaseName] : (abi as AbiName);
}

function checkOptions(options: unknown): OpenRuntimeOptions {
  if (options === undefined) return {};
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw argumentError('options', 'expected an object');
  }
  const { path, abi, ...rest } = options as Record<string, unknown>;
  const unknownKey = Object.keys(rest)[0];
  if (unknownKey !== undefined) throw argumentError(`options.${unknownKey}`, 'not an option of openRuntime');
  if (path !== undefined && (typeof path !== 'string' || path === '')) {
    throw argumentError('options.path', 'expected a non-empty string');
  }
  if (abi !== undefined && (typeof abi !== 'string' || !(ABI_SETTINGS as readonly string[]).includes(abi))) {
    throw argumentError('options.abi', abiExpected(abi));
  }
  return { path: path as string | undefined, abi: abi as AbiSetting | undefined };
}

/** Opens a runtime library (off the JS thread) and tells its ABI. */
export async function openRuntime(options?: OpenRuntimeOptions): Promise<Runtime> {
  const site = captureCallSite(openRuntime);
  try {
    const { path, abi } = checkOptions(options);
    const requested = path ?? process.env.RKLLM_RUNTIME ?? DEFAULT_RUNTIME;
    // The emulated builds declare their ABI themselves; `abi` only chooses which build to open.
    const native =
      requested === SIM_RUNTIME
        ? await loadNative().openRuntime({ path: emulatedRuntimePath(abi === undefined ? DEFAULT_SIM_ABI : emulatedAbi(abi)) })
        : await loadNative().openRuntime(abi === undefined ? { path: requested } : { path: requested, abi });
    return new Runtime(native);
  } catch (error) {
    throw withCallSite(error, site);
  }
}

export class Runtime {
  readonly info: NativeRuntimeInfo;
  readonly constants: RkllmConstants = RKLLM_CONSTANTS;
  readonly #native: NativeRuntime;

  /** Made by openRuntime. */
  constructor(native: NativeRuntime) {
    this.#native = native;
    this.info = native.info;
  }

  /** The runtime's own rkllm_createDefaultParam, as its ABI reports it (a fresh object). */
  createDefaultParam(): RKLLMParam {
    return this.#native.createDefaultParam();
  }

  /** rkllm_init with `param` merged over the defaults; 'sim:NAME' names a bundled sim model. */
  async loadModel(param: PartialParam): Promise<Model> {
    const site = captureCallSite(this.loadModel);
    try {
      const complete = buildParam(param, this.createDefaultParam(), this.info.abi, resolveModelPath);
      return new Model(await this.#native.init(complete));
    } catch (error) {
      throw withCallSite(error, site);
    }
  }
}
