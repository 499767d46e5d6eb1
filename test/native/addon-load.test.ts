// Finding the native module from an installed copy of the package: the explicit path in
// RKLLM_SERVE_ADDON, the one clear error when nothing fits, and a checkout's local build winning
// over its prebuild.

import * as fs from 'fs';
import * as path from 'path';
import { buildDist, PACKAGE_ROOT, runChild } from './child';
import { makeScratchDir, removeScratchDir } from './helpers';

const BUILT_ADDON = path.join(PACKAGE_ROOT, 'build', 'Release', 'rkllm_serve.node');

let installed: string;

// A package folder with the compiled library and no native build of its own; its dependencies
// resolve as an installed package's would.
beforeAll(() => {
  buildDist();
  installed = makeScratchDir('installed');
  fs.writeFileSync(path.join(installed, 'package.json'), JSON.stringify({ name: 'rkllm-serve', version: '0.0.0' }));
  fs.cpSync(path.join(PACKAGE_ROOT, 'dist', 'lib'), path.join(installed, 'dist', 'lib'), { recursive: true });
  fs.symlinkSync(path.join(PACKAGE_ROOT, 'node_modules'), path.join(installed, 'node_modules'), 'dir');
}, 180_000);

afterAll(() => removeScratchDir(installed));

function envWithout(name: string): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env[name];
  return env;
}

test('with no addon anywhere: one ADDON_NOT_FOUND naming platform, C library, paths and the build command', async () => {
  const index = path.join(installed, 'dist', 'lib', 'index.js');
  const outcome = await runChild(
    `
      const lib = require(${JSON.stringify(index)});
      lib.openRuntime({ path: 'sim' }).then(
        () => console.log(JSON.stringify({ opened: true })),
        (error) => console.log(JSON.stringify({ name: error.name, code: error.code, message: error.message,
          isRkllmError: error instanceof lib.RkllmError })),
      );
    `,
    20_000,
    envWithout('RKLLM_SERVE_ADDON'),
  );
  expect(outcome).toMatchObject({ timedOut: false, code: 0 });
  const reported = JSON.parse(outcome.stdout) as { code: string; message: string; isRkllmError: boolean };
  expect(reported.code).toBe('ADDON_NOT_FOUND');
  expect(reported.isRkllmError).toBe(true);
  expect(reported.message).toContain(process.platform);
  expect(reported.message).toContain(process.arch);
  expect(reported.message).toMatch(/glibc \d+\.\d+|musl|unknown/);
  expect(reported.message).toContain(path.join(installed, 'prebuilds', `${process.platform}-${process.arch}`, 'rkllm_serve.node'));
  expect(reported.message).toContain(path.join(installed, 'build', 'Release', 'rkllm_serve.node'));
  expect(reported.message).toContain('npm run build:native');
}, 30_000);

test('RKLLM_SERVE_ADDON names the addon to load; "sim" then resolves beside it', async () => {
  const index = path.join(installed, 'dist', 'lib', 'index.js');
  const outcome = await runChild(
    `
      const lib = require(${JSON.stringify(index)});
      lib.openRuntime({ path: 'sim', abi: '1.2' }).then(
        (runtime) => console.log(JSON.stringify({ info: runtime.info, addonDirectory: lib.addonDirectory() })),
        (error) => console.log(JSON.stringify({ code: error.code, message: error.message })),
      );
    `,
    20_000,
    { ...process.env, RKLLM_SERVE_ADDON: BUILT_ADDON },
  );
  expect(outcome).toMatchObject({ timedOut: false, code: 0 });
  const reported = JSON.parse(outcome.stdout) as { info: { abi: string; path: string }; addonDirectory: string };
  expect(reported.addonDirectory).toBe(path.dirname(BUILT_ADDON));
  expect(reported.info.abi).toBe('1.2');
  expect(reported.info.path).toBe(fs.realpathSync(path.join(path.dirname(BUILT_ADDON), 'librkllmrt-emulated-1.2.so')));
}, 30_000);

test('a checkout holding both: build/Release wins over prebuilds/ (which npm run build does not refresh)', async () => {
  const checkout = makeScratchDir('checkout');
  try {
    fs.writeFileSync(path.join(checkout, 'package.json'), JSON.stringify({ name: 'rkllm-serve', version: '0.0.0' }));
    fs.cpSync(path.join(PACKAGE_ROOT, 'dist', 'lib'), path.join(checkout, 'dist', 'lib'), { recursive: true });
    // The library's run-time dependencies (TypeBox), as an installed checkout has them.
    fs.symlinkSync(path.join(PACKAGE_ROOT, 'node_modules'), path.join(checkout, 'node_modules'));
    // Both folders get a loadable addon and emulated runtime, so only the order decides.
    const builtDir = path.dirname(BUILT_ADDON);
    for (const folder of [path.join('build', 'Release'), path.join('prebuilds', `${process.platform}-${process.arch}`)]) {
      fs.mkdirSync(path.join(checkout, folder), { recursive: true });
      for (const file of ['rkllm_serve.node', 'librkllmrt-emulated-1.3.so']) {
        fs.copyFileSync(path.join(builtDir, file), path.join(checkout, folder, file));
      }
    }
    const index = path.join(checkout, 'dist', 'lib', 'index.js');
    const outcome = await runChild(
      `
        const lib = require(${JSON.stringify(index)});
        lib.openRuntime({ path: 'sim', abi: '1.3' }).then(
          (runtime) => console.log(JSON.stringify({ info: runtime.info, addonDirectory: lib.addonDirectory() })),
          (error) => console.log(JSON.stringify({ code: error.code, message: error.message })),
        );
      `,
      20_000,
      envWithout('RKLLM_SERVE_ADDON'),
    );
    expect(outcome).toMatchObject({ timedOut: false, code: 0 });
    const reported = JSON.parse(outcome.stdout) as { info: { path: string }; addonDirectory: string };
    expect(reported.addonDirectory).toBe(path.join(checkout, 'build', 'Release'));
    expect(reported.info.path).toBe(fs.realpathSync(path.join(checkout, 'build', 'Release', 'librkllmrt-emulated-1.3.so')));
  } finally {
    removeScratchDir(checkout);
  }
}, 30_000);
