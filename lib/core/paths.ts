// Confinement of the paths clients send: model and LoRA files must resolve (symlinks followed)
// inside the operator's models directories, prompt caches inside the cache directory. The path
// checked is the path handed to the runtime, so nothing outside those directories is read or
// written through a client's request.
//
// A prompt cache is used later than it is checked (a load waits behind the model's runs; a save
// happens during a run), and whoever can write in the cache directory could swap a checked file
// for a symlink meanwhile. So a prompt cache is opened by the server, without following a symlink
// in its last component, and checked again through the open descriptor (what it really is and
// where it really is, /proc/self/fd/N); the runtime is handed /proc/self/fd/N, which opens that
// very file whatever its path has become. The descriptor is held until the runtime is done.

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

/** A file the server opened for the runtime, held open until the runtime is done with it. */
export interface HeldFile {
  /** /proc/self/fd/N: opening it opens the file that was checked, whatever its path has become. */
  readonly path: string;
  /** Closes the descriptor; later calls do nothing. */
  release(): void;
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

  /** A LoRA adapter: a file in a models directory, always ('sim:NAME' names a model, never an adapter). */
  loraFile(field: string, given: string): string {
    return this.#existingFileIn(field, given, this.#modelsDirs, 'models directory', '--models-dir');
  }

  /** A prompt cache file to read. */
  cacheFileToRead(field: string, given: string): string {
    return this.#existingFileIn(field, given, this.#cacheDirs(field), 'cache directory', '--cache-dir');
  }

  /** A prompt cache to read, checked and opened now; the runtime reads it through the descriptor. */
  openCacheFileToRead(field: string, given: string): HeldFile {
    return this.#openInCacheDir(field, this.cacheFileToRead(field, given), fs.constants.O_RDONLY);
  }

  /**
   * A prompt cache the runtime will write, at `checked` (what cacheFileToWrite returned when the
   * request came in): opened now, created if missing; the runtime writes it through the descriptor.
   */
  openCacheFileToWrite(field: string, checked: string): HeldFile {
    return this.#openInCacheDir(field, checked, fs.constants.O_WRONLY | fs.constants.O_CREAT);
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

  #openInCacheDir(field: string, target: string, flags: number): HeldFile {
    const [dir] = this.#cacheDirs(field);
    const { O_NOFOLLOW, O_NONBLOCK } = fs.constants;
    let fd: number;
    try {
      // O_NONBLOCK: a FIFO swapped in must not block the thread in open(); fstat refuses it below.
      fd = fs.openSync(target, flags | O_NOFOLLOW | O_NONBLOCK, 0o666);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ELOOP') throw invalidArgument(field, 'was replaced by a symbolic link after it was checked; it is not followed');
      if (code === 'ENOENT') throw invalidArgument(field, 'no longer exists');
      if (code === 'ENXIO') throw invalidArgument(field, 'is not a regular file');
      throw invalidArgument(field, `cannot be opened (${code ?? String(error)})`);
    }
    try {
      if (!fs.fstatSync(fd).isFile()) throw invalidArgument(field, 'is not a regular file');
      // Where the open file really is: a directory on the way swapped for a symlink shows here.
      const opened = fs.readlinkSync(`/proc/self/fd/${fd}`);
      if (!isInside(dir, opened)) throw this.#outside(field, 'cache directory', '--cache-dir');
    } catch (error) {
      fs.closeSync(fd);
      throw error;
    }
    let open = true;
    return {
      path: `/proc/self/fd/${fd}`,
      release: () => {
        if (!open) return;
        open = false;
        fs.closeSync(fd);
      },
    };
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
