// Streams one answer from the emulated runtime through the addon and the library API, token by
// token, at the speed of an RK3588 running Qwen2.5-1.5B. Usage: npm run demo [-- "prompt"]

import { openRuntime } from '../lib';

async function main(): Promise<void> {
  const prompt = process.argv[2] ?? 'Count to 20';
  const runtime = await openRuntime({ path: 'sim' });
  console.error(`runtime: ${runtime.info.path} (ABI ${runtime.info.abi}, emulated)`);
  const model = await runtime.loadModel({ model_path: 'sim:rk3588-qwen2.5-1.5b' });
  const run = model.run(prompt);
  for await (const chunk of run) process.stdout.write(chunk.text);
  const result = await run;
  process.stdout.write('\n');
  console.error(
    `${result.token_count} tokens; first token after ${result.perf.prefill_time_ms.toFixed(0)} ms of prefill, ` +
      `${((result.perf.generate_tokens * 1000) / result.perf.generate_time_ms).toFixed(1)} tokens/s`,
  );
  await model.destroy();
}

main().catch((error) => {
  console.error(error instanceof Error ? error.message : error);
  process.exitCode = 1;
});
