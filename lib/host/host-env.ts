// What a model host and the server that spawns it agree on besides the protocol: where the host's
// entry is, the fd the protocol uses, and how the host learns its parent's pid.

import * as fs from 'fs';
import * as path from 'path';
import { packageRoot } from '../package-root';

/** The protocol's fd in the host: stdio is [ignored stdin, runtime stdout, runtime stderr, protocol]. */
export const HOST_PROTOCOL_FD = 3;

/** The server's pid, so a host whose parent died before it armed PR_SET_PDEATHSIG can tell. */
export const HOST_PARENT_ENV = 'RKLLM_SERVE_HOST_PARENT';

/** The compiled entry of a host: beside this file in dist/, else (lib/*.ts under ts-jest) in dist/. */
export function hostMainPath(): string {
  const beside = path.join(__dirname, 'main.js');
  if (__filename.endsWith('.js') && fs.existsSync(beside)) return beside;
  return path.join(packageRoot(), 'dist', 'lib', 'host', 'main.js');
}
