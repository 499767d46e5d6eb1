// Loads the native module once (the better-sqlite3 pattern): an explicit path from the
// environment first, then a local build from source, then a prebuild for this platform. The local
// build wins (as in node-gyp-build) because `npm run build` refreshes it and not prebuilds/, which
// a checkout may hold stale; the npm package ships no build/, so there the prebuild is loaded.

import * as fs from 'fs';
import * as path from 'path';
import { RkllmError } from '../errors';
import { packageRoot } from '../package-root';
import type { NativeBinding } from './binding';

const ADDON_FILE = 'rkllm_serve.node';
const BUILD_COMMAND = 'npm run build:native';

/** How to get an addon built from source: in a clone here, else (an npm install, which carries
 * prebuilds but no C++ sources) in a clone of the repository, then pointed at. */
function buildAdvice(root: string): string {
  if (fs.existsSync(path.join(root, 'CMakeLists.txt'))) {
    return `Build it from source with \`${BUILD_COMMAND}\` (needs cmake and a C++17 compiler), or point RKLLM_SERVE_ADDON at a ${ADDON_FILE}.`;
  }
  return (
    `This installed package has no prebuild for this system and no sources to build. In a clone of the ` +
    `rkllm-serve repository run \`bash scripts/install-build-deps.sh && npm ci && ${BUILD_COMMAND}\`, ` +
    `then set RKLLM_SERVE_ADDON=<clone>/build/Release/${ADDON_FILE} (docs/install.md, "Building from source").`
  );
}

interface LoadedAddon {
  binding: NativeBinding;
  /** The folder the addon was loaded from; the emulated runtime libraries sit beside it. */
  directory: string;
}

let loaded: LoadedAddon | undefined;

/** The candidate paths, best first. */
export function addonCandidates(): string[] {
  const root = packageRoot();
  const candidates: string[] = [];
  const fromEnv = process.env.RKLLM_SERVE_ADDON;
  if (fromEnv) candidates.push(path.resolve(fromEnv));
  candidates.push(path.join(root, 'build', 'Release', ADDON_FILE));
  candidates.push(path.join(root, 'prebuilds', `${process.platform}-${process.arch}`, ADDON_FILE));
  return candidates;
}

/** 'glibc X.Y', 'musl' or 'unknown': the first thing to check when a prebuild will not load. */
export function describeCLibrary(): string {
  const report = process.report?.getReport() as
    | { header?: { glibcVersionRuntime?: string }; sharedObjects?: string[] }
    | undefined;
  const glibc = report?.header?.glibcVersionRuntime;
  if (glibc) return `glibc ${glibc}`;
  if (report?.sharedObjects?.some((file) => file.includes('musl'))) return 'musl';
  return 'unknown';
}

function tryLoad(file: string): { binding?: NativeBinding; failure?: string } {
  if (!fs.existsSync(file)) return { failure: 'not found' };
  try {
    // A computed require is the portable way to load a .node file from CommonJS.
    return { binding: require(file) as NativeBinding };
  } catch (error) {
    return { failure: error instanceof Error ? error.message : String(error) };
  }
}

function loadOnce(): LoadedAddon {
  const attempts: string[] = [];
  for (const file of addonCandidates()) {
    const { binding, failure } = tryLoad(file);
    if (binding) {
      binding.setErrorClass(RkllmError);
      return { binding, directory: path.dirname(file) };
    }
    attempts.push(`  ${file}: ${failure}`);
  }
  throw new RkllmError(
    `no native rkllm-serve addon fits ${process.platform}-${process.arch} (C library: ${describeCLibrary()}).\n` +
      `Tried:\n${attempts.join('\n')}\n` +
      buildAdvice(packageRoot()),
    'ADDON_NOT_FOUND',
  );
}

/** The native module, typed by its contract (loaded and set up on first use). */
export function loadNative(): NativeBinding {
  loaded ??= loadOnce();
  return loaded.binding;
}

/** The folder the native module was loaded from (loads it if needed). */
export function addonDirectory(): string {
  loaded ??= loadOnce();
  return loaded.directory;
}
