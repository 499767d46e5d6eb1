#!/usr/bin/env node
'use strict';
// Checks the prebuilt binaries of the architecture this node runs on, through the compiled
// library (dist/lib): the addon loads from prebuilds/<platform>-<arch>/, the emulated runtime
// of each ABI opens, and a streamed "count to 20" comes back as exactly "1, 2, ..., 20".
// Run by scripts/arm64-qemu-check.sh with Debian's arm64 node under qemu. Plain CommonJS that
// Node 18 runs as it is.
//
// usage: runtime-check.js [EXPECTED_ADDON_DIR]

const path = require('path');

const COUNT = 20;
const EXPECTED_TEXT = Array.from({ length: COUNT }, (_, i) => String(i + 1)).join(', ');
const ABIS = ['1.2', '1.3', '1.3.1'];
const TIMEOUT_MS = 120000;

async function checkAbi(library, abi) {
  const runtime = await library.openRuntime({ path: 'sim', abi });
  if (runtime.info.abi !== abi) throw new Error(`sim ${abi} opened as ABI ${runtime.info.abi}`);
  const model = await runtime.loadModel({ model_path: 'sim:rk3588-qwen2.5-1.5b' });
  const run = model.run(`count to ${COUNT}`, undefined, { signal: AbortSignal.timeout(TIMEOUT_MS) });
  let streamed = '';
  let chunks = 0;
  for await (const chunk of run) {
    streamed += chunk.text;
    chunks += 1;
  }
  const result = await run;
  await model.destroy();
  if (streamed !== EXPECTED_TEXT || result.text !== EXPECTED_TEXT) {
    throw new Error(`ABI ${abi}: streamed ${JSON.stringify(streamed)}, result ${JSON.stringify(result.text)}`);
  }
  if (chunks < 2) throw new Error(`ABI ${abi}: the answer came in ${chunks} chunk(s), not streamed`);
  console.log(`runtime-check: ABI ${abi} (${path.basename(runtime.info.path)}): ${chunks} chunks, "${streamed}"`);
}

async function main() {
  const expectedDirectory = process.argv[2];
  const library = require(path.join(__dirname, '..', 'dist', 'lib', 'index.js'));
  const directory = library.addonDirectory();
  console.log(`runtime-check: node ${process.version} ${process.platform}-${process.arch}, addon from ${directory}`);
  if (expectedDirectory && path.resolve(expectedDirectory) !== directory) {
    throw new Error(`the addon loaded from ${directory}, expected ${path.resolve(expectedDirectory)}`);
  }
  for (const abi of ABIS) await checkAbi(library, abi);
}

main().catch((error) => {
  console.error(`runtime-check: ${error && error.stack ? error.stack : error}`);
  process.exit(1);
});
