// Every Model function once, and the guarantees of runs: exact answers, whole UTF-8, order over
// a long stream, cancellation by every route, queueing, injected faults and destruction.

import * as fs from 'fs';
import * as path from 'path';
import { RKLLMInferMode, RKLLMInputType, type Model, type RunChunk, type Runtime } from '../../lib';
import {
  ALL_ABIS,
  countText,
  destroyModel,
  drain,
  loadSim,
  makeScratchDir,
  openSim,
  rejectionOf,
  removeScratchDir,
} from './helpers';

const SLOW_MODEL = 'rk3588-qwen2.5-1.5b';
const THIS_FILE = path.basename(__filename);

/** Jest runs tests in a vm context whose Float32Array is not the addon's, so instanceof fails. */
function expectFloat32Array(value: unknown): void {
  expect(Object.prototype.toString.call(value)).toBe('[object Float32Array]');
}

/** Chunks' seq values are 0, 1, 2, ... */
function expectContiguous(chunks: RunChunk[]): void {
  chunks.forEach((chunk, index) => {
    if (chunk.seq !== index) throw new Error(`chunk ${index} has seq ${chunk.seq}`);
  });
}

describe.each(ALL_ABIS)('ABI %s', (abi) => {
  let runtime: Runtime;
  let instant: Model;
  let slow: Model;
  let scratch: string;

  beforeAll(async () => {
    scratch = makeScratchDir(`model-run-${abi}`);
    runtime = await openSim(abi);
    instant = await loadSim(runtime, 'instant');
    slow = await loadSim(runtime, SLOW_MODEL);
  }, 120_000);

  afterAll(async () => {
    await destroyModel(instant);
    await destroyModel(slow);
    removeScratchDir(scratch);
  }, 60_000);

  /** Loads a model for one test and always destroys it. */
  async function withModel<T>(name: string, use: (model: Model) => Promise<T>, param = {}): Promise<T> {
    const model = await loadSim(runtime, name, param);
    try {
      return await use(model);
    } finally {
      await destroyModel(model);
    }
  }

  describe('answers', () => {
    test('"count to 5" answers exactly "1, 2, 3, 4, 5", awaited or iterated', async () => {
      const result = await instant.run('count to 5');
      expect(result.text).toBe('1, 2, 3, 4, 5');
      expect(result.state).toBe(2);
      expect(result.token_count).toBe(9); // "1" "," " 2" "," " 3" "," " 4" "," " 5"
      for (const key of ['prefill_time_ms', 'prefill_tokens', 'generate_time_ms', 'generate_tokens', 'memory_usage_mb'] as const) {
        expect(typeof result.perf[key]).toBe('number');
      }
      expect(result.perf.generate_tokens).toBeGreaterThan(0);

      const run = instant.run({ input_type: RKLLMInputType.RKLLM_INPUT_PROMPT, role: 'user', prompt_input: 'count to 5' });
      expect(run.id).toBeGreaterThanOrEqual(0);
      const { chunks, error } = await drain(run, 100);
      expect(error).toBeUndefined();
      expectContiguous(chunks);
      expect(chunks.map((chunk) => chunk.text).join('')).toBe('1, 2, 3, 4, 5');
      const iterated = await run;
      expect(iterated.text).toBe('1, 2, 3, 4, 5');
      expect(iterated.token_count).toBe(chunks.length);
    });

    test('UTF-8 round trip: WAITING chunks are seen, every chunk is whole UTF-8, the join is exact', async () => {
      const text = 'héllo 日本語 😀 мир';
      const run = instant.run(`echo: ${text}`);
      const { chunks, error } = await drain(run, 1000);
      expect(error).toBeUndefined();
      expectContiguous(chunks);
      expect(chunks.some((chunk) => chunk.state === 1)).toBe(true);
      for (const chunk of chunks) {
        expect(chunk.text).not.toContain('\uFFFD');
        expect(Buffer.from(chunk.text, 'utf8').toString('utf8')).toBe(chunk.text);
        expect([0, 1]).toContain(chunk.state);
      }
      expect(chunks.map((chunk) => chunk.text).join('')).toBe(text);
      const result = await run;
      expect(result.text).toBe(text);
      expect(result.token_count).toBe(chunks.length);
    });

    test('order over about 100,000 tokens: seq contiguous, times monotonic, end after the last token, text exact', async () => {
      const n = 35_000; // ~104,000 tokens with the emulated tokenizer
      await withModel(
        'instant',
        async (model) => {
          const run = model.run(`count to ${n}`);
          let previousTime = -Infinity;
          let joined = '';
          let count = 0;
          for await (const chunk of run) {
            if (chunk.seq !== count) throw new Error(`chunk ${count} has seq ${chunk.seq}`);
            if (chunk.time_us < previousTime) throw new Error(`time went back at seq ${chunk.seq}`);
            previousTime = chunk.time_us;
            joined += chunk.text;
            count++;
            if (count > 500_000) throw new Error('runaway run');
          }
          const result = await run;
          expect(count).toBeGreaterThan(100_000);
          expect(result.token_count).toBe(count);
          expect(joined).toBe(countText(n));
          expect(result.text).toBe(countText(n));
        },
        { max_context_len: 262_144, max_new_tokens: 262_000 },
      );
    }, 180_000);

    test('onChunks batches from a runtime faster than JavaScript: at most 256 events a batch, in order, none lost', async () => {
      const n = 5_000;
      await withModel(
        'instant',
        async (model) => {
          const run = model.run(`count to ${n}`);
          const sizes: number[] = [];
          let joined = '';
          let next = 0;
          run.onChunks((chunks) => {
            sizes.push(chunks.length);
            for (const chunk of chunks) {
              if (chunk.seq !== next) throw new Error(`chunk ${next} has seq ${chunk.seq}`);
              next++;
              joined += chunk.text;
            }
          });
          const result = await run;
          // The emulator finishes long before JavaScript has taken the first batches, so a backlog
          // forms; each drain still hands over at most 256 events (the run's end among them).
          expect(Math.max(...sizes)).toBeLessThanOrEqual(256);
          expect(sizes.length).toBeGreaterThan(Math.floor(next / 256));
          expect(next).toBe(result.token_count);
          expect(joined).toBe(countText(n));
        },
        { max_context_len: 32_768, max_new_tokens: 32_000 },
      );
    });

    test('a run that is only awaited keeps no chunks, and says so if iterated afterwards', async () => {
      const run = instant.run('count to 50');
      const result = await run;
      expect(result.text).toBe(countText(50));
      expect(() => run[Symbol.asyncIterator]()).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    });

    test('bad input is refused through the run, with INVALID_ARGUMENT', async () => {
      const notAnInput = instant.run(42 as unknown as string);
      expect(notAnInput.id).toBe(-1);
      expect((await rejectionOf(notAnInput)).code).toBe('INVALID_ARGUMENT');
      const missingMember = instant.run({ input_type: RKLLMInputType.RKLLM_INPUT_PROMPT });
      expect((await rejectionOf(missingMember)).code).toBe('INVALID_ARGUMENT');
      const badSignal = instant.run('count to 2', undefined, { signal: {} as AbortSignal });
      expect(badSignal.id).toBe(-1);
      expect((await rejectionOf(badSignal)).code).toBe('INVALID_ARGUMENT');
      // The model is unharmed.
      expect(instant.isRunning()).toBe(false);
      expect((await instant.run('count to 2')).text).toBe('1, 2');
    });
  });

  describe('model functions', () => {
    test('loadLora: a loaded adapter can be named by a run; an unknown name fails the run', async () => {
      await withModel('instant', async (model) => {
        const adapterFile = path.join(scratch, 'adapter.rkllm');
        fs.writeFileSync(adapterFile, Buffer.alloc(4096, 7));
        const prompt = 'Tell me about the sea.';
        const plain = await model.run(prompt);
        await expect(model.loadLora({ lora_adapter_path: adapterFile, lora_adapter_name: 'sea', scale: 1 })).resolves.toBe(0);
        const withLora = await model.run(prompt, { lora_params: { lora_adapter_name: 'sea' } });
        expect(withLora.text.length).toBeGreaterThan(0);
        expect(withLora.text).not.toBe(plain.text);

        const unknown = await rejectionOf(model.run(prompt, { lora_params: { lora_adapter_name: 'never-loaded' } }));
        expect(unknown.code).toBe('RUN_FAILED');
        expect((await model.run('count to 2')).text).toBe('1, 2');
      });
    });

    test('loadLora from a missing file: CALL_FAILED naming rkllm_load_lora, with the caller\'s stack', async () => {
      const error = await rejectionOf(
        instant.loadLora({ lora_adapter_path: path.join(scratch, 'no-such-adapter'), lora_adapter_name: 'x', scale: 1 }),
      );
      expect(error.code).toBe('CALL_FAILED');
      expect(error.message).toContain('rkllm_load_lora');
      expect(error.stack).toContain(THIS_FILE);
    });

    test('prompt cache: saved by a run, then loaded and released', async () => {
      await withModel('instant', async (model) => {
        const cacheFile = path.join(scratch, 'prompt-cache.bin');
        const result = await model.run('count to 3', {
          prompt_cache_params: { save_prompt_cache: true, prompt_cache_path: cacheFile },
        });
        expect(result.text).toBe('1, 2, 3');
        expect(fs.statSync(cacheFile).size).toBeGreaterThan(0);
        await expect(model.loadPromptCache(cacheFile)).resolves.toBe(0);
        expect((await model.run('count to 2')).text).toBe('1, 2');
        await expect(model.releasePromptCache()).resolves.toBe(0);

        const missing = await rejectionOf(model.loadPromptCache(path.join(scratch, 'no-such-cache.bin')));
        expect(missing.code).toBe('CALL_FAILED');
        expect(missing.message).toContain('rkllm_load_prompt_cache');
      });
    });

    test('KV cache: keep_history grows it, clearKvCache empties it', async () => {
      await withModel('instant', async (model) => {
        const initial = model.getKvCacheSize();
        expect(initial).toHaveLength(1); // n_batch 1
        await model.run('count to 3', { keep_history: 1 });
        const afterOne = model.getKvCacheSize()[0];
        expect(afterOne).toBeGreaterThan(initial[0]);
        await model.run('count to 4', { keep_history: 1 });
        const afterTwo = model.getKvCacheSize()[0];
        expect(afterTwo).toBeGreaterThan(afterOne);
        await expect(model.clearKvCache(false)).resolves.toBe(0);
        expect(model.getKvCacheSize()[0]).toBeLessThan(afterOne);
        expect(model.getKvCacheSize()[0]).toBe(0);
      });
    });

    test('setChatTemplate changes the generic answer', async () => {
      await withModel('instant', async (model) => {
        const prompt = 'What should I cook tonight?';
        const before = await model.run(prompt);
        expect((await model.run(prompt)).text).toBe(before.text); // deterministic without a change
        await expect(model.setChatTemplate('You are a terse pirate.', '<|im_start|>user\n', '<|im_end|>\n<|im_start|>assistant\n')).resolves.toBe(0);
        const after = await model.run(prompt);
        expect(after.text.length).toBeGreaterThan(0);
        expect(after.text).not.toBe(before.text);
      });
    });

    test('sim:echo-prompt answers with the whole templated prompt, the system text only into an empty cache', async () => {
      await withModel('echo-prompt', async (model) => {
        expect((await model.run('Hi')).text).toBe('Hi');
        await model.setChatTemplate('[S]', '[U]', '[/U][A]');
        expect((await model.run('Hi', { keep_history: 1 })).text).toBe('[S][U]Hi[/U][A]');
        expect((await model.run('And you?', { keep_history: 1 })).text).toBe('[U]And you?[/U][A]');
        // Echo comes first: no count, no tool answer.
        await model.clearKvCache(false);
        expect((await model.run({ input_type: RKLLMInputType.RKLLM_INPUT_PROMPT, role: 'tool', prompt_input: 'count to 3' })).text).toBe('[S][U]count to 3[/U][A]');
      });
    });

    test('setFunctionTools: a prompt naming a tool answers with <tool_call>; a tool response is answered', async () => {
      await withModel('instant', async (model) => {
        const tools = [
          {
            type: 'function',
            function: {
              name: 'get_weather',
              description: 'Current weather of a city',
              parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
            },
          },
        ];
        await expect(model.setFunctionTools('You may call tools.', tools, '<tool_response>')).resolves.toBe(0);
        const call = await model.run('What is the weather in Paris? Use get_weather.');
        expect(call.text).toContain('<tool_call>');
        expect(call.text).toContain('"get_weather"');

        const answer = await model.run({ input_type: RKLLMInputType.RKLLM_INPUT_PROMPT, role: 'tool', prompt_input: '{"temp_c": 21}' });
        expect(answer.text).toContain('The tool answered');

        // The JSON-string form is accepted as well.
        await expect(model.setFunctionTools('You may call tools.', JSON.stringify(tools), '<tool_response>')).resolves.toBe(0);
        expect((await model.run('call get_weather for Oslo')).text).toContain('<tool_call>');
      });
    });

    test('setCrossAttnParams resolves 0', async () => {
      await withModel(
        'instant',
        async (model) => {
          const numTokens = 4;
          await expect(
            model.setCrossAttnParams({
              encoder_k_cache: new Float32Array(numTokens * 16),
              encoder_v_cache: new Float32Array(numTokens * 16),
              encoder_mask: new Float32Array(numTokens),
              encoder_pos: new Int32Array(numTokens).map((_, i) => i),
              num_tokens: numTokens,
            }),
          ).resolves.toBe(0);
        },
        { extend_param: { use_cross_attn: 1 } },
      );
    });

    test('GET_LOGITS mode gives a Float32Array of vocab_size per token', async () => {
      const result = await instant.run('Hello there', { mode: RKLLMInferMode.RKLLM_INFER_GET_LOGITS });
      const logits = result.logits;
      expect(logits).toBeDefined();
      if (!logits) return;
      expectFloat32Array(logits.data);
      expect(logits.vocab_size).toBeGreaterThan(0);
      expect(logits.num_tokens).toBeGreaterThanOrEqual(1);
      expect(logits.data.length).toBe(logits.vocab_size * logits.num_tokens);
      expect(logits.data.every((value) => Number.isFinite(value))).toBe(true);
    });

    test('GET_LAST_HIDDEN_LAYER mode gives embd_size x num_tokens floats', async () => {
      const result = await instant.run('Hello there', { mode: RKLLMInferMode.RKLLM_INFER_GET_LAST_HIDDEN_LAYER });
      const hidden = result.last_hidden_layer;
      expect(hidden).toBeDefined();
      if (!hidden) return;
      expectFloat32Array(hidden.data);
      expect(hidden.embd_size).toBeGreaterThan(0);
      expect(hidden.num_tokens).toBeGreaterThanOrEqual(1);
      expect(hidden.data.length).toBe(hidden.embd_size * hidden.num_tokens);
    });

    test('isRunning is true during a slow run and false after it', async () => {
      expect(slow.isRunning()).toBe(false);
      const run = slow.run('count to 12');
      let seenRunning = false;
      const { chunks, error } = await drain(run, 1000, () => {
        if (slow.isRunning()) seenRunning = true;
      });
      expect(error).toBeUndefined();
      expect(chunks.map((chunk) => chunk.text).join('')).toBe(countText(12));
      expect(seenRunning).toBe(true);
      await run;
      expect(slow.isRunning()).toBe(false);
    }, 60_000);
  });

  describe('stopping runs', () => {
    /** Starts a long run on the slow model and returns it once `after` chunks have arrived. */
    async function iterateSome(model: Model, after: number, stop: () => unknown) {
      const run = model.run('count to 100000');
      const { chunks, error } = await drain(run, 10_000, (_chunk, index) => {
        if (index + 1 === after) stop();
      });
      return { run, chunks, error };
    }

    async function expectCleanNextRun(model: Model): Promise<void> {
      const { chunks, error } = await drain(model.run('count to 3'), 100);
      expect(error).toBeUndefined();
      expectContiguous(chunks);
      expect(chunks.map((chunk) => chunk.text).join('')).toBe('1, 2, 3');
      expect(model.isRunning()).toBe(false);
    }

    test('model.abort() mid-stream ends the run as RUN_ABORTED; the next run is clean', async () => {
      let aborting: Promise<number> | undefined;
      const { run, chunks, error } = await iterateSome(slow, 3, () => {
        aborting = slow.abort();
      });
      await expect(aborting).resolves.toBe(0);
      expect(error).toMatchObject({ code: 'RUN_ABORTED' });
      expect(chunks.length).toBeGreaterThanOrEqual(3);
      expect(chunks.length).toBeLessThan(1000);
      expectContiguous(chunks);
      expect((await rejectionOf(run)).code).toBe('RUN_ABORTED');
      await expectCleanNextRun(slow);
    }, 60_000);

    test('an AbortSignal cancels mid-stream; an already-aborted one never starts the run', async () => {
      const controller = new AbortController();
      const run = slow.run('count to 100000', undefined, { signal: controller.signal });
      const { chunks, error } = await drain(run, 10_000, (_chunk, index) => {
        if (index === 2) controller.abort();
      });
      expect(error).toMatchObject({ code: 'RUN_ABORTED' });
      expect(error instanceof Error && error.stack).toContain(THIS_FILE);
      expect(chunks.length).toBeLessThan(1000);
      expect((await rejectionOf(run)).code).toBe('RUN_ABORTED');
      await expectCleanNextRun(slow);

      const early = slow.run('count to 3', undefined, { signal: AbortSignal.abort() });
      expect(early.id).toBe(-1);
      expect((await rejectionOf(early)).code).toBe('RUN_ABORTED');
      expect(slow.isRunning()).toBe(false);
    }, 60_000);

    test('break out of for-await cancels the run; the next run is clean', async () => {
      const run = slow.run('count to 100000');
      let taken = 0;
      for await (const chunk of run) {
        expect(chunk.seq).toBe(taken);
        if (++taken === 3) break;
      }
      expect((await rejectionOf(run)).code).toBe('RUN_ABORTED');
      expect(run.cancel()).toBe(false); // Already ended.
      await expectCleanNextRun(slow);
    }, 60_000);

    test('a second run waits for the first; both complete, in order', async () => {
      const ends: string[] = [];
      const first = slow.run('count to 8');
      const second = slow.run('count to 3');
      const firstDone = first.then((result) => {
        ends.push('first');
        return result;
      });
      const secondDone = second.then((result) => {
        ends.push('second');
        return result;
      });
      const [a, b] = await Promise.all([drain(first, 100), drain(second, 100)]);
      expect(a.error).toBeUndefined();
      expect(b.error).toBeUndefined();
      expect((await firstDone).text).toBe(countText(8));
      expect((await secondDone).text).toBe('1, 2, 3');
      expect(ends).toEqual(['first', 'second']);
      // The second run's first token came after the first run's last one.
      expect(b.chunks[0].time_us).toBeGreaterThanOrEqual(a.chunks[a.chunks.length - 1].time_us);
    }, 60_000);

    test('cancel() removes a queued run without touching the running one', async () => {
      const running = slow.run('count to 6');
      const queued = slow.run('count to 3');
      expect(queued.cancel()).toBe(true);
      expect((await rejectionOf(queued)).code).toBe('RUN_ABORTED');
      expect((await running).text).toBe(countText(6));
    }, 60_000);

    test('sim:slow-abort: a slow abort still ends the run as aborted, and the next run is clean', async () => {
      await withModel('slow-abort', async (model) => {
        let aborting: Promise<number> | undefined;
        const { run, error, chunks } = await iterateSome(model, 2, () => {
          aborting = model.abort();
        });
        await expect(aborting).resolves.toBe(0);
        expect(error).toMatchObject({ code: 'RUN_ABORTED' });
        expectContiguous(chunks);
        expect((await rejectionOf(run)).code).toBe('RUN_ABORTED');
        await expectCleanNextRun(model);
      });
    }, 90_000);

    test('sim:faulty-midstream: RUN_FAILED after some chunks; a short run still answers', async () => {
      await withModel('faulty-midstream', async (model) => {
        const run = model.run('count to 100000');
        const { chunks, error } = await drain(run, 200_000);
        expect(error).toMatchObject({ code: 'RUN_FAILED' });
        expect((error as Error).message.length).toBeGreaterThan(0);
        expect(chunks.length).toBeGreaterThan(0);
        expectContiguous(chunks);
        expect((await rejectionOf(run)).code).toBe('RUN_FAILED');
        expect((await model.run('count to 2')).text).toBe('1, 2');
      });
    }, 90_000);
  });

  describe('model lifetime', () => {
    test('sim:faulty-init: MODEL_INIT_FAILED', async () => {
      const error = await rejectionOf(loadSim(runtime, 'faulty-init'));
      expect(error.code).toBe('MODEL_INIT_FAILED');
      expect(error.message.length).toBeGreaterThan(0);
    }, 60_000);

    test('a second model on the same base_domain_id fails to init; the first is unharmed', async () => {
      await withModel('instant', async (model) => {
        // Domain 40 is far above the small ones the helper hands out.
        const holder = await runtime.loadModel({ model_path: 'sim:instant', extend_param: { base_domain_id: 40 } });
        try {
          const error = await rejectionOf(
            runtime.loadModel({ model_path: 'sim:instant', extend_param: { base_domain_id: 40 } }),
          );
          expect(error.code).toBe('MODEL_INIT_FAILED');
          expect((await holder.run('count to 2')).text).toBe('1, 2');
          expect((await model.run('count to 2')).text).toBe('1, 2');
        } finally {
          await holder.destroy();
        }
        // Once destroyed, its domain is free again.
        const reuse = await runtime.loadModel({ model_path: 'sim:instant', extend_param: { base_domain_id: 40 } });
        await reuse.destroy();
      });
    }, 60_000);

    test('destroy, then every call fails with MODEL_DESTROYED', async () => {
      const model = await loadSim(runtime, 'instant');
      await destroyModel(model);
      expect(model.destroyed).toBe(true);
      const run = model.run('count to 3');
      expect((await rejectionOf(run)).code).toBe('MODEL_DESTROYED');
      expect((await rejectionOf(model.setChatTemplate('', '', ''))).code).toBe('MODEL_DESTROYED');
      expect((await rejectionOf(model.releasePromptCache())).code).toBe('MODEL_DESTROYED');
    });

    test('destroy while running ends the running and the queued run as aborted', async () => {
      const model = await loadSim(runtime, SLOW_MODEL);
      try {
        const running = model.run('count to 100000');
        const queued = model.run('count to 3');
        const iterator = running[Symbol.asyncIterator]();
        await iterator.next(); // The run is under way.
        await expect(model.destroy()).resolves.toBe(0);
        expect((await rejectionOf(running)).code).toBe('RUN_ABORTED');
        expect((await rejectionOf(queued)).code).toBe('RUN_ABORTED');
        expect(model.destroyed).toBe(true);
      } finally {
        await destroyModel(model);
      }
    }, 60_000);
  });
});
