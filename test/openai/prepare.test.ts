// The scheduler's prepare step, which the OpenAI routes rely on to set model state (template,
// tools, KV cache) in queue order: it runs only once the run before it has ended, it may replace
// the input, a job cancelled during it never starts a run, and its failure fails only that job.

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
});
