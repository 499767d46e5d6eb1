// Many init/run/destroy cycles must not leak: resident memory after the warm-up and after the
// rest of the cycles stays within a stated bound.

import * as v8 from 'v8';
import * as vm from 'vm';
import type { Runtime } from '../../lib';
import { openSim } from './helpers';

const WARM_UP_CYCLES = 100;
const TOTAL_CYCLES = 1000;
const RSS_GROWTH_BOUND_MIB = 20;
const MIB = 1024 * 1024;

// A full collection before each measurement keeps JavaScript garbage out of the figures.
v8.setFlagsFromString('--expose-gc');
const collectGarbage = vm.runInNewContext('gc') as () => void;

async function cycle(runtime: Runtime, index: number): Promise<void> {
  const model = await runtime.loadModel({ model_path: 'sim:instant' });
  try {
    const result = await model.run('count to 3');
    if (result.text !== '1, 2, 3') throw new Error(`cycle ${index} answered ${JSON.stringify(result.text)}`);
  } finally {
    await model.destroy();
  }
}

async function settledRss(): Promise<number> {
  // Let finalizers of released native objects run, then collect.
  for (let i = 0; i < 3; i++) {
    collectGarbage();
    await new Promise((resolve) => setImmediate(resolve));
  }
  return process.memoryUsage().rss;
}

test(`${TOTAL_CYCLES} init/run/destroy cycles keep resident memory flat (growth < ${RSS_GROWTH_BOUND_MIB} MiB)`, async () => {
  const runtime = await openSim('1.3');
  const started = Date.now();
  for (let i = 0; i < WARM_UP_CYCLES; i++) await cycle(runtime, i);
  const afterWarmUp = await settledRss();
  for (let i = WARM_UP_CYCLES; i < TOTAL_CYCLES; i++) await cycle(runtime, i);
  const afterAll = await settledRss();
  const growthMiB = (afterAll - afterWarmUp) / MIB;
  console.log(
    `cycles: ${TOTAL_CYCLES} in ${Date.now() - started} ms; RSS after ${WARM_UP_CYCLES}: ${(afterWarmUp / MIB).toFixed(1)} MiB, ` +
      `after ${TOTAL_CYCLES}: ${(afterAll / MIB).toFixed(1)} MiB, growth ${growthMiB.toFixed(2)} MiB (bound ${RSS_GROWTH_BOUND_MIB})`,
  );
  expect(growthMiB).toBeLessThan(RSS_GROWTH_BOUND_MIB);
}, 240_000);
