// Benchmark of the native core alone: how many tokens per second the addon carries from the
// emulated runtime's callback into a JavaScript listener (sim:instant), and how much time it adds
// per token between the runtime's callback and JavaScript (RK3588 profile). Prints a Markdown
// table for docs/benchmarks.md. Usage: npm run bench:addon [-- --quick]

import * as os from 'os';
import { Worker } from 'worker_threads';
import { loadNative } from '../lib/native/load';
import { emulatedRuntimePath, resolveModelPath } from '../lib/runtime/emulated';
import type { AbiName, NativeModel, NativeRunEvent, RKLLMInput } from '../lib/native/binding';

const quick = process.argv.includes('--quick');

interface ThroughputFigure {
  abi: AbiName;
  tokens: number;
  seconds: number;
  tokensPerSecond: number;
}

interface LatencyFigure {
  abi: AbiName;
  samples: number;
  medianUs: number;
  p99Us: number;
  maxUs: number;
}

function nowMicros(): number {
  // Same clock as the addon's time_us (CLOCK_MONOTONIC).
  return Number(process.hrtime.bigint()) / 1000;
}

function percentile(sorted: number[], fraction: number): number {
  const index = Math.min(sorted.length - 1, Math.ceil(fraction * sorted.length) - 1);
  return sorted[Math.max(0, index)];
}

async function loadModel(abi: AbiName, simModel: string, contextLength: number): Promise<NativeModel> {
  const runtime = await loadNative().openRuntime({ path: emulatedRuntimePath(abi) });
  const param = runtime.createDefaultParam();
  param.model_path = resolveModelPath(simModel);
  param.max_context_len = contextLength;
  param.max_new_tokens = contextLength;
  return runtime.init(param);
}

/** Runs once; calls onToken with each token event and its receipt time. */
function runOnce(
  model: NativeModel,
  prompt: string,
  onToken: (event: Extract<NativeRunEvent, { kind: 'token' }>, receivedUs: number) => void,
): Promise<void> {
  const input: RKLLMInput = { input_type: 0, prompt_input: prompt };
  return new Promise((resolve, reject) => {
    model.run(input, { mode: 0, keep_history: 0 }, (events) => {
      const receivedUs = nowMicros();
      for (const event of events) {
        if (event.kind === 'token') onToken(event, receivedUs);
        else if (event.status === 'finish') resolve();
        else reject(new Error(`run ended with ${event.status}: ${event.error?.message ?? ''}`));
      }
    });
  });
}

async function measureThroughput(abi: AbiName): Promise<ThroughputFigure> {
  const model = await loadModel(abi, 'sim:instant', 262144);
  const prompt = `count to ${quick ? 20000 : 80000}`;
  await runOnce(model, 'count to 2000', () => undefined); // warm-up
  let best: ThroughputFigure | undefined;
  for (let round = 0; round < (quick ? 1 : 3); round++) {
    let tokens = 0;
    const start = nowMicros();
    await runOnce(model, prompt, () => {
      tokens++;
    });
    const seconds = (nowMicros() - start) / 1e6;
    const figure = { abi, tokens, seconds, tokensPerSecond: tokens / seconds };
    if (!best || figure.tokensPerSecond > best.tokensPerSecond) best = figure;
  }
  await model.destroy();
  return best!;
}

async function measureLatency(abi: AbiName): Promise<LatencyFigure> {
  const model = await loadModel(abi, 'sim:rk3588-qwen2.5-1.5b', 4096);
  const added: number[] = [];
  // About 17 tokens/s: this many numbers take ~10 s (~3 tokens per number beyond 4 digits).
  await runOnce(model, `count to ${quick ? 40 : 90}`, (event, receivedUs) => {
    added.push(receivedUs - event.time_us);
  });
  await model.destroy();
  added.sort((a, b) => a - b);
  return {
    abi,
    samples: added.length,
    medianUs: percentile(added, 0.5),
    p99Us: percentile(added, 0.99),
    maxUs: added[added.length - 1],
  };
}

// The floor this machine puts under any cross-thread hand-off into JavaScript: a worker thread
// that sleeps like a decoding NPU (60 ms) and then posts its timestamp to the main thread, which
// is idle in its event loop meanwhile. The addon's added latency is judged beside this.
async function measureWakeFloor(samples: number): Promise<LatencyFigure> {
  const source = `
    const { parentPort } = require('worker_threads');
    let left = ${samples};
    const tick = () => {
      parentPort.postMessage(Number(process.hrtime.bigint()) / 1000);
      if (--left > 0) setTimeout(tick, 60); else parentPort.close();
    };
    setTimeout(tick, 60);`;
  const added: number[] = [];
  await new Promise<void>((resolve, reject) => {
    const worker = new Worker(source, { eval: true });
    worker.on('message', (sentUs: number) => added.push(nowMicros() - sentUs));
    worker.on('error', reject);
    worker.on('exit', () => resolve());
  });
  added.sort((a, b) => a - b);
  return {
    abi: 'baseline' as AbiName,
    samples: added.length,
    medianUs: percentile(added, 0.5),
    p99Us: percentile(added, 0.99),
    maxUs: added[added.length - 1],
  };
}

async function main(): Promise<void> {
  const throughput: ThroughputFigure[] = [];
  const latency: LatencyFigure[] = [];
  for (const abi of ['1.2', '1.3'] as AbiName[]) {
    throughput.push(await measureThroughput(abi));
    latency.push(await measureLatency(abi));
  }
  latency.push(await measureWakeFloor(quick ? 50 : 180));
  const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  console.log(`Machine: ${os.cpus().length} cores, ${cpu}, Node ${process.version}, ${new Date().toISOString()}`);
  console.log('');
  console.log('| ABI | tokens | seconds | tokens/s (target >= 500,000) |');
  console.log('|---|---:|---:|---:|');
  for (const t of throughput) {
    console.log(`| ${t.abi} | ${t.tokens} | ${t.seconds.toFixed(3)} | ${Math.round(t.tokensPerSecond).toLocaleString('en-US')} |`);
  }
  console.log('');
  console.log('| ABI | tokens | median added (ms) | p99 added (ms, target < 0.2) | max (ms) |');
  console.log('|---|---:|---:|---:|---:|');
  for (const l of latency) {
    const label = l.abi === ('baseline' as AbiName) ? 'baseline: worker thread → main thread' : l.abi;
    console.log(
      `| ${label} | ${l.samples} | ${(l.medianUs / 1000).toFixed(3)} | ${(l.p99Us / 1000).toFixed(3)} | ${(l.maxUs / 1000).toFixed(3)} |`,
    );
  }
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
