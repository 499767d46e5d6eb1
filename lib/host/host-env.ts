// What a model host and the server that spawns it agree on besides the protocol: where the host's
// entry is, the fd the protocol uses, and how the host learns its parent's pid.

import * as fs from 'fs';
import * as path from 'path';
import { invalidArgument } from '../errors';
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

/**
 * The command that runs a host's Node: this Node unless RKLLM_SERVE_HOST_NODE gives another as a
 * JSON array (a wrapper or an emulator: `["qemu-aarch64-static", "-L", "/arm64", "/arm64/usr/bin/node"]`).
 * A server run under qemu-user without binfmt_misc cannot start its own Node binary directly.
 */
export const HOST_NODE_ENV = 'RKLLM_SERVE_HOST_NODE';

export function hostNodeCommand(env: NodeJS.ProcessEnv = process.env): [string, ...string[]] {
  const given = env[HOST_NODE_ENV];
  if (given === undefined || given === '') return [process.execPath];
  let parsed: unknown;
  try {
    parsed = JSON.parse(given);
  } catch {
    parsed = undefined;
  }
  if (!Array.isArray(parsed) || parsed.length === 0 || !parsed.every((part) => typeof part === 'string' && part !== '')) {
    throw invalidArgument(HOST_NODE_ENV, 'must be a JSON array of the command and its arguments that runs Node, e.g. ["/usr/bin/node"]');
  }
  return parsed as [string, ...string[]];
}
