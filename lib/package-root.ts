// Finds the folder that holds rkllm-serve's package.json. Code runs both from lib/*.ts (ts-jest)
// and from dist/lib/*.js (compiled), at different depths, so the root is searched for, not assumed.

import * as fs from 'fs';
import * as path from 'path';
import { RkllmError } from './errors';

const PACKAGE_NAME = 'rkllm-serve';

let cachedRoot: string | undefined;

function isOurManifest(manifestPath: string): boolean {
  let text: string;
  try {
    text = fs.readFileSync(manifestPath, 'utf8');
  } catch {
    return false;
  }
  try {
    const manifest: unknown = JSON.parse(text);
    return typeof manifest === 'object' && manifest !== null && (manifest as { name?: unknown }).name === PACKAGE_NAME;
  } catch {
    return false;
  }
}

/** Walks up from `start` to the first folder whose package.json is named rkllm-serve. */
export function findPackageRoot(start: string = __dirname): string {
  let dir = path.resolve(start);
  for (;;) {
    if (isOurManifest(path.join(dir, 'package.json'))) return dir;
    const parent = path.dirname(dir);
    if (parent === dir) {
      // Without the root neither the addon nor the bundled sim models can be found.
      throw new RkllmError(`no package.json named ${PACKAGE_NAME} above ${start}`, 'ADDON_NOT_FOUND');
    }
    dir = parent;
  }
}

/** The package root of this installation (found once). */
export function packageRoot(): string {
  cachedRoot ??= findPackageRoot();
  return cachedRoot;
}
