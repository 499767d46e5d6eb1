// The scheduler's prepare step, which the OpenAI routes rely on to set model state (template,
// tools, KV cache) in queue order: it runs only once the run before it has ended, it may replace
// the input, a job cancelled during it never starts a run, and its failure fails only that job.
// And a job answered early from its own chunks (a stop sequence, a token budget) hands the model
// to the next job at once, not one decode step later.

import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { openRuntime, type Model, type Runtime } from '../../lib';
import { Scheduler } from '../../lib/core/scheduler';
import type { JobOutcome } from '../../lib/core/job';

let runtime: Runtime;
let model: Model;

beforeAll(async () => {
  runtime = await openRuntime({ path: 'sim', abi: '1.3' });
  model = await runtime.loadModel({ model_path: 'sim:instant' });
});

afterAll(async () => {
  await model?.destroy();
});

/** An emulated model whose decode step is far longer than any scheduling delay on a busy machine. */
const DECODE_MS = 2000;

async function loadSlowDecodeModel(): Promise<{ slow: Model; dir: string }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rkllm-prepare-'));
  const file = path.join(dir, 'slow-decode.json');
  const timing = { load_ms: 0, prefill_ms_per_token: 0, decode_ms_per_token: DECODE_MS };
  fs.writeFileSync(file, JSON.stringify({ format: 'rkllm-emulated-model', version: 1, name: 'slow-decode', timing }));
  // A domain of its own: the suite's other model holds domain 0.
  return { slow: await runtime.loadModel({ model_path: file, extend_param: { base_domain_id: 1 } }), dir };
}

const prompt = (text: string) => ({ input_type: 0, prompt_input: text });

function submit(scheduler: Scheduler, prepare: () => Promise<{ input: ReturnType<typeof prompt>; infer: { keep_history: number } } | void>) {
  return scheduler.submit({ requestId: null, input: prompt('echo: unprepared'), infer: {}, streaming: false, prepare });
}

function textOf(outcome: JobOutcome): string {
  if (outcome.kind !== 'finished') throw new Error(`expected a finished job, got ${outcome.kind}`);
  return outcome.result.text;
}

describe('Scheduler prepare', () => {
  it('prepares each job after the run before it ended, and runs what prepare returned', async () => {
    const scheduler = new Scheduler(model, { maxQueue: 4, requestTimeoutMs: 0 });
    const order: string[] = [];
    const first = scheduler.submit({
      requestId: null,
      input: prompt('count to 3'),
      infer: {},
      streaming: false,
      onSettled: () => order.push('first settled'),
    });
    const second = submit(scheduler, async () => {
      order.push('second prepared');
      // The previous run is over: nothing runs on the model while this one is prepared.
      expect(model.isRunning()).toBe(false);
      return { input: prompt('echo: prepared'), infer: { keep_history: 0 } };
    });
    expect(textOf(await first.done)).toBe('1, 2, 3');
    expect(textOf(await second.done)).toBe('prepared');
    expect(order).toEqual(['first settled', 'second prepared']);
  });

  it('never starts the run of a job cancelled while it was being prepared', async () => {
    const scheduler = new Scheduler(model, { maxQueue: 4, requestTimeoutMs: 0 });
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const job = submit(scheduler, async () => {
      await gate;
      return { input: prompt('count to 5'), infer: { keep_history: 0 } };
    });
    expect(job.cancel('cancel')).toBe(true);
    release();
    expect((await job.done).kind).toBe('ended');
    await scheduler.idle(2000);
    expect(job.run).toBeUndefined();
    expect(scheduler.running).toBe(0);
  });

  it('fails only the job whose prepare rejected; the next one runs', async () => {
    const scheduler = new Scheduler(model, { maxQueue: 4, requestTimeoutMs: 0 });
    const failing = submit(scheduler, () => Promise.reject(new Error('template refused')));
    const next = submit(scheduler, async () => undefined);
    const outcome = await failing.done;
    expect(outcome.kind).toBe('failed');
    // No replacement from prepare: the job's own input runs.
    expect(textOf(await next.done)).toBe('unprepared');
  });

  it('starts the next job as soon as a streaming job is answered from its first chunk', async () => {
    const { slow, dir } = await loadSlowDecodeModel();
    try {
      const scheduler = new Scheduler(slow, { maxQueue: 4, requestTimeoutMs: 0 });
      let answeredAt = 0;
      let preparedAt = 0;
      const first = scheduler.submit({
        requestId: null,
        input: prompt('count to 5'),
        infer: {},
        streaming: true,
        // As the OpenAI routes do when a stop sequence matches: the job is answered from inside onChunks.
        onChunks: ([chunk]) => {
          answeredAt = performance.now();
          first.settle({ kind: 'finished', result: { text: chunk.text, token_count: 1, state: 2, perf: { prefill_time_ms: 0, prefill_tokens: 0, generate_time_ms: 0, generate_tokens: 0, memory_usage_mb: 0 } } });
        },
      });
      const second = submit(scheduler, async () => {
        preparedAt = performance.now();
        // An empty answer ends without a decode step.
        return { input: prompt('count to 0'), infer: { keep_history: 0 } };
      });
      expect(textOf(await first.done)).toBe('1');
      expect(textOf(await second.done)).toBe('');
      // The first run was cancelled at once: the next job did not wait for its second token.
      expect(preparedAt - answeredAt).toBeLessThan(DECODE_MS / 2);
    } finally {
      await slow.destroy();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 20_000);
});
