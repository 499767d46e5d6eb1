// A process that uses the library must be able to end: by letting go of everything, or by
// process.exit() in the middle of a run. Each case runs in its own child process, with a bound.

import { buildDist, DIST_INDEX, runChild } from './child';

const EXIT_BOUND_MS = 10_000;

function childScript(body: string): string {
  return `
    const lib = require(${JSON.stringify(DIST_INDEX)});
    (async () => { ${body} })().catch((error) => {
      console.error('child failed:', error && error.stack ? error.stack : error);
      process.exitCode = 1;
    });
  `;
}

beforeAll(() => buildDist(), 180_000);

test('a process that loads a model and lets go (no destroy) exits by itself with code 0', async () => {
  const outcome = await runChild(
    childScript(`
      const runtime = await lib.openRuntime({ path: 'sim' });
      await runtime.loadModel({ model_path: 'sim:instant' });
      console.log('loaded');
    `),
    EXIT_BOUND_MS,
  );
  expect(outcome).toMatchObject({ timedOut: false, code: 0, signal: null });
  expect(outcome.stdout).toContain('loaded');
}, 30_000);

test('process.exit(0) in the middle of a long run exits with code 0 and no crash signal', async () => {
  const outcome = await runChild(
    childScript(`
      const runtime = await lib.openRuntime({ path: 'sim' });
      const model = await runtime.loadModel({ model_path: 'sim:rk3588-qwen2.5-1.5b' });
      for await (const chunk of model.run('count to 100000')) {
        if (chunk.seq === 2) {
          console.log('exiting mid-run');
          process.exit(0);
        }
      }
      console.log('the run ended before the exit');
    `),
    EXIT_BOUND_MS * 3,
  );
  expect(outcome.stderr).toBe('');
  expect(outcome).toMatchObject({ timedOut: false, code: 0, signal: null });
  expect(outcome.stdout).toContain('exiting mid-run');
}, 60_000);

test('a process that runs one short run and then does nothing exits by itself with code 0', async () => {
  const outcome = await runChild(
    childScript(`
      const runtime = await lib.openRuntime({ path: 'sim', abi: '1.2' });
      const model = await runtime.loadModel({ model_path: 'sim:instant' });
      const result = await model.run('count to 3');
      console.log('answer: ' + result.text);
    `),
    EXIT_BOUND_MS,
  );
  expect(outcome).toMatchObject({ timedOut: false, code: 0, signal: null });
  expect(outcome.stdout).toContain('answer: 1, 2, 3');
}, 30_000);
