// Confinement of the paths clients send: model and LoRA files must resolve (symlinks followed)
// inside the operator's models directories, prompt caches inside the cache directory. The path
// checked is the path handed to the runtime, so nothing outside those directories is read or
// written through a client's request.

import * as fs from 'fs';
import * as path from 'path';
import { RkllmError, invalidArgument } from '../errors';
import { SIM_MODEL_PREFIX } from '../runtime/emulated';

function realDirectory(dir: string, setting: string): string {
  let real: string;
  try {
    real = fs.realpathSync(path.resolve(dir));
  } catch {
    throw new RkllmError(`The ${setting} '${dir}' does not exist; create it or fix the setting.`, 'INVALID_ARGUMENT');
  }
  if (!fs.statSync(real).isDirectory()) {
    throw new RkllmError(`The ${setting} '${dir}' is not a directory.`, 'INVALID_ARGUMENT');
  }
  return real;
}

function isInside(dir: string, target: string): boolean {
  const relative = path.relative(dir, target);
  return relative !== '' && relative !== '..' && !relative.startsWith('..' + path.sep) && !path.isAbsolute(relative);
}

function realpathOrUndefined(target: string): string | undefined {
  try {
    return fs.realpathSync(target);
  } catch {
    return undefined;
  }
}

function isSymlink(target: string): boolean {
  try {
    return fs.lstatSync(target).isSymbolicLink();
  } catch {
    return false;
  }
}

export class PathPolicy {
  readonly #modelsDirs: string[];
  readonly #cacheDir: string | undefined;
  readonly #allowSimNames: boolean;

  /** Throws an RkllmError (a start-up failure) when a configured directory is missing. */
  constructor(modelsDirs: readonly string[], cacheDir: string | undefined, allowSimNames: boolean) {
    this.#modelsDirs = modelsDirs.map((dir) => realDirectory(dir, 'models directory'));
    this.#cacheDir = cacheDir === undefined ? undefined : realDirectory(cacheDir, 'cache directory');
    this.#allowSimNames = allowSimNames;
  }

  /** A model file to read: 'sim:NAME' on the emulated runtime, else a file in a models directory. */
  modelFile(field: string, given: string): string {
    if (given.startsWith(SIM_MODEL_PREFIX)) {
      if (this.#allowSimNames) return given;
      throw invalidArgument(field, `'${SIM_MODEL_PREFIX}NAME' models exist only on the emulated runtime (--runtime sim)`);
    }
    return this.#existingFileIn(field, given, this.#modelsDirs, 'models directory', '--models-dir');
  }

  /** A prompt cache file to read. */
  cacheFileToRead(field: string, given: string): string {
    return this.#existingFileIn(field, given, this.#cacheDirs(field), 'cache directory', '--cache-dir');
  }

  /** A prompt cache file the runtime will write: its directory must be inside the cache directory,
   * and an existing file (or symlink) there must resolve inside it too. */
  cacheFileToWrite(field: string, given: string | undefined): string {
    const [dir] = this.#cacheDirs(field);
    const candidate = path.resolve(dir, given === undefined || given === '' ? 'prompt_cache.bin' : given);
    const parent = realpathOrUndefined(path.dirname(candidate));
    if (parent === undefined) throw invalidArgument(field, 'its directory does not exist');
    const target = path.join(parent, path.basename(candidate));
    const existing = realpathOrUndefined(target);
    // A dangling symlink would let the runtime create a file wherever it points.
    if (existing === undefined && isSymlink(target)) throw invalidArgument(field, 'is a symbolic link to a missing file');
    const resolved = existing ?? target;
    if (!isInside(dir, resolved)) throw this.#outside(field, 'cache directory', '--cache-dir');
    if (existing !== undefined && fs.statSync(existing).isDirectory()) throw invalidArgument(field, 'is a directory');
    return resolved;
  }

  #cacheDirs(field: string): string[] {
    if (this.#cacheDir === undefined) {
      throw invalidArgument(field, 'prompt cache paths are refused: the server has no cache directory (start it with --cache-dir DIR)');
    }
    return [this.#cacheDir];
  }

  #existingFileIn(field: string, given: string, dirs: string[], what: string, flag: string): string {
    if (dirs.length === 0) {
      throw invalidArgument(field, `client paths are refused: the server has no ${what} (start it with ${flag} DIR)`);
    }
    // A relative path is looked up in each allowed directory in turn.
    const candidates = path.isAbsolute(given) ? [given] : dirs.map((dir) => path.join(dir, given));
    let sawFile = false;
    for (const candidate of candidates) {
      const real = realpathOrUndefined(candidate);
      if (real === undefined) continue;
      sawFile = true;
      if (!dirs.some((dir) => isInside(dir, real))) continue;
      if (!fs.statSync(real).isFile()) throw invalidArgument(field, 'is not a regular file');
      return real;
    }
    if (!sawFile && candidates.every((candidate) => dirs.some((dir) => isInside(dir, path.resolve(candidate))))) {
      throw invalidArgument(field, `no such file in the allowed ${what}`);
    }
    throw this.#outside(field, what, flag);
  }

  #outside(field: string, what: string, flag: string): RkllmError {
    return invalidArgument(field, `the path resolves outside the allowed ${what} (the operator allows directories with ${flag})`);
  }
}
