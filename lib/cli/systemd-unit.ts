// `rkllm-serve --print-systemd-unit`: the unit file shipped in the package
// (systemd/rkllm-serve.service) with the paths of this installation filled in: the node that
// runs this process, this package's bin and its readiness wait.

import * as fs from 'fs';
import * as path from 'path';
import { packageRoot } from '../package-root';

export const SYSTEMD_UNIT_FILE = path.join('systemd', 'rkllm-serve.service');
const WAIT_READY_FILE = path.join('systemd', 'wait-ready.js');
/** Where ProtectHome=yes hides files from the service. */
const HOME_PREFIXES = ['/home/', '/root/', '/run/user/'];

export interface SystemdUnit {
  readonly text: string;
  /** What the person installing it should know (printed on stderr, not into the unit). */
  readonly notes: string[];
}

/**
 * One word of an Exec line. systemd reads `%` as a specifier everywhere, so it is doubled; `$` as
 * a variable in the arguments only (systemd-analyze verify takes a command's `$$` literally).
 */
function execWord(value: string, isCommand: boolean): string {
  const specifiers = value.replace(/%/g, '%%');
  const escaped = isCommand ? specifiers : specifiers.replace(/\$/g, '$$$$');
  return /^[A-Za-z0-9_@+=:,./-]+$/.test(escaped) ? escaped : `"${escaped.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

export function systemdUnit(root: string = packageRoot(), node: string = process.execPath): SystemdUnit {
  const paths = {
    node: fs.realpathSync(node),
    bin: fs.realpathSync(path.join(root, 'bin', 'rkllm-serve')),
    wait_ready: fs.realpathSync(path.join(root, WAIT_READY_FILE)),
  };
  let text = fs.readFileSync(path.join(root, SYSTEMD_UNIT_FILE), 'utf8');
  for (const [name, value] of Object.entries(paths)) text = text.split(`{{${name}}}`).join(execWord(value, name === 'node'));
  const notes: string[] = [];
  const inHome = Object.values(paths).filter((file) => HOME_PREFIXES.some((prefix) => file.startsWith(prefix)));
  if (inHome.length > 0) {
    // Node from a version manager, or a clone in a home folder: the service must still see it.
    text = text.replace(/^ProtectHome=yes$/m, `# ${inHome.join(' and ')} lies in a home folder: read-only, not hidden.\nProtectHome=read-only`);
    notes.push(`${inHome.join(' and ')} lies in a home folder, so the unit has ProtectHome=read-only; a system-wide node and install keep homes hidden`);
  }
  return { text, notes };
}
