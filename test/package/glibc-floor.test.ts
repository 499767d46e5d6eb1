// The prebuilt binaries load on glibc 2.28 or newer (Node 20's own floor), whatever glibc the
// build machine has: readelf's list of the symbol versions each one needs from the system stays
// at or below the floor (technique: cmake/portable-binaries.cmake; docs/install.md).
// The prebuilds come from `npm run prebuilds` (asked for by name: CI runs it before this suite).

import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';

const PACKAGE_ROOT = path.resolve(__dirname, '..', '..');
const BINARIES = ['rkllm_serve.node', 'librkllmrt-emulated-1.2.so', 'librkllmrt-emulated-1.3.so', 'librkllmrt-emulated-1.3.1.so'];
const TARGETS = [
  { target: 'linux-arm64', machine: 'AArch64' },
  { target: 'linux-x64', machine: 'Advanced Micro Devices X86-64' },
];

/** The newest version each system library may be asked for: glibc 2.28 and the GCC 8 runtime
 * that shipped beside it (Debian 10). GLIBCXX/CXXABI stay absent in practice (static libstdc++). */
const FLOOR: Record<string, string> = {
  GLIBC: '2.28',
  GLIBCXX: '3.4.25',
  CXXABI: '1.3.11',
  GCC: '7.0.0',
};
/** What a portable binary may link dynamically: the C library family and libgcc_s. */
const ALLOWED_NEEDED = /^(libc\.so\.6|libm\.so\.6|libdl\.so\.2|libpthread\.so\.0|librt\.so\.1|libgcc_s\.so\.1|ld-linux-.*)$/;

function compareVersions(a: string, b: string): number {
  const left = a.split('.').map(Number);
  const right = b.split('.').map(Number);
  for (let i = 0; i < Math.max(left.length, right.length); i++) {
    const difference = (left[i] ?? 0) - (right[i] ?? 0);
    if (difference !== 0) return Math.sign(difference);
  }
  return 0;
}

function readelf(args: string[], file: string): string {
  // The build machine's readelf reads ELF files of any architecture.
  return execFileSync('readelf', [...args, file], { encoding: 'utf8', timeout: 30_000 });
}

/** Highest version needed per family ('GLIBC' -> '2.25'), from the .gnu.version_r section. */
function neededVersions(file: string): Record<string, string> {
  const highest: Record<string, string> = {};
  const section = readelf(['--version-info', '--wide'], file).split(/Version needs section/)[1] ?? '';
  for (const match of section.matchAll(/Name: ([A-Z]+)_([0-9.]+)/g)) {
    const [, family, version] = match;
    if (highest[family] === undefined || compareVersions(version, highest[family]) > 0) highest[family] = version;
  }
  return highest;
}

function neededLibraries(file: string): string[] {
  return [...readelf(['--dynamic', '--wide'], file).matchAll(/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g)].map((m) => m[1]);
}

describe.each(TARGETS)('prebuilds/$target', ({ target, machine }) => {
  const folder = path.join(PACKAGE_ROOT, 'prebuilds', target);

  test.each(BINARIES)(`%s is there, built for ${machine}, and needs nothing past glibc ${FLOOR.GLIBC}`, (binary) => {
    const file = path.join(folder, binary);
    if (!fs.existsSync(file)) {
      throw new Error(`${file} is missing: run \`npm run prebuilds\` first (npm run build does not make them)`);
    }
    expect(readelf(['--file-header'], file)).toContain(`Machine:                           ${machine}`);

    const versions = neededVersions(file);
    expect(versions.GLIBC).toBeDefined(); // the parse found the section at all
    for (const [family, version] of Object.entries(versions)) {
      const floor = FLOOR[family];
      if (floor === undefined) throw new Error(`${binary} needs ${family}_${version}, a library family with no floor set`);
      if (compareVersions(version, floor) > 0) {
        throw new Error(`${binary} needs ${family}_${version}, newer than the floor ${family}_${floor}`);
      }
    }
    // libstdc++ is linked in, so a board's older libstdc++.so.6 never matters.
    expect(versions.GLIBCXX).toBeUndefined();
    for (const library of neededLibraries(file)) expect(library).toMatch(ALLOWED_NEEDED);
  });
});
