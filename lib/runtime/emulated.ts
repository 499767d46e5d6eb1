// The project's emulated runtime, addressed by short names: 'sim' as a runtime path and
// 'sim:NAME' as a model path. Lets everything above the addon run without a Rockchip board.

import * as fs from 'fs';
import * as path from 'path';
import type { AbiName } from '../native/binding';
import { addonDirectory } from '../native/load';
import { packageRoot } from '../package-root';
import { argumentError } from './argument-error';

export const SIM_RUNTIME = 'sim';
export const SIM_MODEL_PREFIX = 'sim:';
export const DEFAULT_SIM_ABI: AbiName = '1.3';

/** librkllmrt-emulated-<abi>.so beside the loaded addon (both are built by build:native). */
export function emulatedRuntimePath(abi: AbiName = DEFAULT_SIM_ABI): string {
  return path.join(addonDirectory(), `librkllmrt-emulated-${abi}.so`);
}

/** Where the bundled sim model files live. */
export function simModelDirectory(): string {
  return path.join(packageRoot(), 'addon', 'emulator', 'models');
}

/** The names usable as 'sim:NAME', sorted. */
export function listSimModels(): string[] {
  let files: string[];
  try {
    files = fs.readdirSync(simModelDirectory());
  } catch {
    return [];
  }
  return files
    .filter((file) => file.endsWith('.json'))
    .map((file) => file.slice(0, -'.json'.length))
    .sort();
}

export function isSimModelPath(modelPath: string): boolean {
  return modelPath.startsWith(SIM_MODEL_PREFIX);
}

/** Turns 'sim:NAME' into the bundled file's path; any other path is returned unchanged. */
export function resolveModelPath(modelPath: string): string {
  if (!isSimModelPath(modelPath)) return modelPath;
  const name = modelPath.slice(SIM_MODEL_PREFIX.length);
  const available = listSimModels();
  // Only listed names are accepted, so 'sim:../x' cannot reach outside the models folder.
  if (!available.includes(name)) {
    throw argumentError(
      'param.model_path',
      `unknown sim model '${name}'; available: ${available.join(', ') || '(none found in ' + simModelDirectory() + ')'}`,
    );
  }
  return path.join(simModelDirectory(), `${name}.json`);
}
