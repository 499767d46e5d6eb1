// The emulated runtime's prompt caches, as the server relies on them: saving and loading cost the
// time their KV bytes take (from the model file's prompt_cache block), files are as large as that
// KV state (sparse), a loaded cache spares only the common prefix's prefill, every kind of bad
// file (a foreign model's included) loads as -1 with an "E rkllm:" line, and answers do not
// depend on whether earlier turns came from the KV cache or were re-sent whole.

import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { RKLLMInputType, type Model, type RunChunk, type Runtime } from '../../lib';
import { chatTemplatePreset, renderConversation, type TemplateTurn } from '../../lib/core/chat-templates';
import { DIST_INDEX, runChild } from './child';
import { destroyModel, drain, loadModelFile, loadSim, makeScratchDir, openSim, rejectionOf, removeScratchDir } from './helpers';

const PREFILL_MS_PER_TOKEN = 1;
const KV_BYTES_PER_TOKEN = 1_000_000;
const SAVE_MB_PER_S = 1000; // 1 ms per token
const LOAD_MB_PER_S = 2000; // 0.5 ms per token
const SAVE_MS_PER_TOKEN = KV_BYTES_PER_TOKEN / (SAVE_MB_PER_S * 1000);
const LOAD_MS_PER_TOKEN = KV_BYTES_PER_TOKEN / (LOAD_MB_PER_S * 1000);
// Emulated waits never end early; the clocks the test reads round to the millisecond.
const CLOCK_SLACK_MS = 2;
const CONTEXT = { max_context_len: 4096 };

function modelFile(name: string, promptCache: object | undefined, prefillMsPerToken = PREFILL_MS_PER_TOKEN): string {
  return JSON.stringify({
    format: 'rkllm-emulated-model',
    version: 1,
    name,
    timing: { prefill_ms_per_token: prefillMsPerToken },
    ...(promptCache ? { prompt_cache: promptCache } : {}),
  });
}

const COSTS = { kv_bytes_per_token: KV_BYTES_PER_TOKEN, save_mb_per_s: SAVE_MB_PER_S, load_mb_per_s: LOAD_MB_PER_S };

/** n words of one token each (with the empty chat template, n prompt tokens). */
function words(n: number, stem = 'w'): string {
  return Array.from({ length: n }, (_, i) => `${stem}${i % 100}`).join(' ');
}

/** The text part of a cache file: its seven lines (magic, version, model, fingerprint, kv bytes, count, ids). */
function cacheHeader(file: string): { lines: string[]; bytes: number } {
  const fd = fs.openSync(file, 'r');
  try {
    const chunk = Buffer.alloc(1 << 16);
    const read = fs.readSync(fd, chunk, 0, chunk.length, 0);
    let end = -1;
    for (let line = 0; line < 7; line++) {
      end = chunk.indexOf(0x0a, end + 1);
      if (end < 0 || end >= read) throw new Error(`${file}: fewer than 7 lines in its first ${read} bytes`);
    }
    return { lines: chunk.subarray(0, end).toString('utf8').split('\n'), bytes: end + 1 };
  } finally {
    fs.closeSync(fd);
  }
}

/** Runs to the end; returns the result and when (Date.now()) the first chunk came. */
async function timedRun(model: Model, prompt: string, infer = {}): Promise<{ text: string; perf: { prefill_time_ms: number; prefill_tokens: number }; firstChunkAt: number; started: number }> {
  let firstChunkAt = 0;
  const started = Date.now();
  const run = model.run(prompt, infer);
  const { error } = await drain(run, 10_000, (_chunk: RunChunk, index: number) => {
    if (index === 0) firstChunkAt = Date.now();
  });
  expect(error).toBeUndefined();
  const result = await run;
  return { text: result.text, perf: result.perf, firstChunkAt, started };
}

describe('prompt cache (emulated runtime)', () => {
  let runtime: Runtime;
  let scratch: string;
  let costlyPath: string;
  let otherPath: string;
  let costly: Model;

  beforeAll(async () => {
    scratch = makeScratchDir('prompt-cache');
    costlyPath = path.join(scratch, 'costly.json');
    otherPath = path.join(scratch, 'other.json');
    fs.writeFileSync(costlyPath, modelFile('costly', COSTS));
    fs.writeFileSync(otherPath, modelFile('other', COSTS));
    runtime = await openSim('1.3');
    costly = await loadModelFile(runtime, costlyPath, CONTEXT);
  }, 60_000);

  afterAll(async () => {
    await destroyModel(costly);
    removeScratchDir(scratch);
  }, 60_000);

  test('a save costs tokens x kv_bytes_per_token / save_mb_per_s before the first token; the file has that size, sparse', async () => {
    const file = path.join(scratch, 'saved.bin');
    const prompt = words(200);
    const saved = await timedRun(costly, prompt, { prompt_cache_params: { save_prompt_cache: true, prompt_cache_path: file } });
    const tokens = saved.perf.prefill_tokens;
    expect(tokens).toBe(200);
    const beforeFirstToken = tokens * (PREFILL_MS_PER_TOKEN + SAVE_MS_PER_TOKEN);
    expect(saved.firstChunkAt - saved.started).toBeGreaterThanOrEqual(beforeFirstToken - CLOCK_SLACK_MS);
    expect(saved.perf.prefill_time_ms).toBeGreaterThanOrEqual(beforeFirstToken - CLOCK_SLACK_MS);

    const { lines, bytes } = cacheHeader(file);
    expect(lines.slice(0, 6)).toEqual([
      'RKLLM-EMULATED-PROMPT-CACHE 1',
      'version 2',
      'model costly',
      expect.stringMatching(/^fingerprint [0-9a-f]{16}$/),
      `kv_bytes_per_token ${KV_BYTES_PER_TOKEN}`,
      `tokens ${tokens}`,
    ]);
    expect(lines[6].split(' ')).toHaveLength(tokens);
    const stat = fs.statSync(file);
    expect(stat.size).toBe(bytes + tokens * KV_BYTES_PER_TOKEN);
    // 200 MB on paper, a few blocks on disk.
    expect(stat.blocks * 512).toBeLessThan(stat.size / 100);

    // The answer does not depend on saving.
    expect((await costly.run(prompt)).text).toBe(saved.text);
  });

  test('a load costs tokens x kv_bytes_per_token / load_mb_per_s on the call; then prefill counts only what follows the common prefix', async () => {
    const file = path.join(scratch, 'prefix.bin');
    const prefix = words(300);
    await costly.run(prefix, { prompt_cache_params: { save_prompt_cache: true, prompt_cache_path: file } });

    const loadStarted = Date.now();
    await expect(costly.loadPromptCache(file)).resolves.toBe(0);
    expect(Date.now() - loadStarted).toBeGreaterThanOrEqual(300 * LOAD_MS_PER_TOKEN - CLOCK_SLACK_MS);

    // Hit: the prompt extends the cached one by 12 tokens; only those are prefilled.
    const extended = `${prefix} ${words(12, 'x')}`;
    const hit = await timedRun(costly, extended);
    expect(hit.perf.prefill_tokens).toBe(312); // as documented: the whole prompt
    expect(hit.perf.prefill_time_ms).toBeGreaterThanOrEqual(12 * PREFILL_MS_PER_TOKEN - CLOCK_SLACK_MS);
    expect(hit.perf.prefill_time_ms).toBeLessThan((300 * PREFILL_MS_PER_TOKEN) / 2);

    // A prompt that diverges after 100 tokens is spared those 100 only.
    const diverging = `${words(100)} ${words(50, 'y')}`;
    const partial = await timedRun(costly, diverging);
    expect(partial.perf.prefill_time_ms).toBeGreaterThanOrEqual(50 * PREFILL_MS_PER_TOKEN - CLOCK_SLACK_MS);
    expect(partial.perf.prefill_time_ms).toBeLessThan(150 * PREFILL_MS_PER_TOKEN);

    // Miss: nothing in common, the whole prompt is prefilled.
    const miss = await timedRun(costly, words(80, 'z'));
    expect(miss.perf.prefill_time_ms).toBeGreaterThanOrEqual(80 * PREFILL_MS_PER_TOKEN - CLOCK_SLACK_MS);

    // Released: the extended prompt is prefilled whole again, and answers the same as with the cache.
    await expect(costly.releasePromptCache()).resolves.toBe(0);
    const released = await timedRun(costly, extended);
    expect(released.perf.prefill_time_ms).toBeGreaterThanOrEqual(312 * PREFILL_MS_PER_TOKEN - CLOCK_SLACK_MS);
    expect(released.text).toBe(hit.text);
  });

  test('a model file without a prompt_cache block: saves and loads cost nothing, the file holds no KV bytes', async () => {
    const freePath = path.join(scratch, 'free.json');
    fs.writeFileSync(freePath, modelFile('free', undefined, 0));
    const free = await loadModelFile(runtime, freePath, CONTEXT);
    try {
      const file = path.join(scratch, 'free.bin');
      await free.run(words(2000), { prompt_cache_params: { save_prompt_cache: true, prompt_cache_path: file } });
      const { lines, bytes } = cacheHeader(file);
      expect(lines[4]).toBe('kv_bytes_per_token 0');
      expect(fs.statSync(file).size).toBe(bytes);
      await expect(free.loadPromptCache(file)).resolves.toBe(0);
    } finally {
      await destroyModel(free);
    }
  });

  test('another model\'s cache is refused (-1), though the files are alike', async () => {
    const other = await loadModelFile(runtime, otherPath, CONTEXT);
    try {
      const file = path.join(scratch, 'by-other.bin');
      await other.run(words(5), { prompt_cache_params: { save_prompt_cache: true, prompt_cache_path: file } });
      await expect(other.loadPromptCache(file)).resolves.toBe(0);
      const refused = await rejectionOf(costly.loadPromptCache(file));
      expect(refused.code).toBe('CALL_FAILED');
      expect(refused.message).toContain('rkllm_load_prompt_cache');
    } finally {
      await destroyModel(other);
    }
  });

  test('every kind of bad file loads as -1 with an "E rkllm:" line saying why, and nothing crashes', async () => {
    const good = path.join(scratch, 'good.bin');
    const prompt = words(6);
    await costly.run(prompt, { prompt_cache_params: { save_prompt_cache: true, prompt_cache_path: good } });
    const text = fs.readFileSync(good).subarray(0, cacheHeader(good).bytes).toString('latin1');
    const kvBytes = fs.statSync(good).size - text.length;
    const variant = (name: string, header: string, extraBytes = kvBytes): string => {
      const file = path.join(scratch, `${name}.bin`);
      fs.writeFileSync(file, header);
      fs.truncateSync(file, Buffer.byteLength(header, 'latin1') + extraBytes);
      return file;
    };
    const ids = text.split('\n')[6].split(' ');
    const withIds = (list: string[]): string => text.replace(/tokens \d+\n.*\n$/, `tokens ${ids.length}\n${list.join(' ')}\n`);

    // A save cut short by an abort: the KV bytes written by then, not all of them.
    const slowSavePath = path.join(scratch, 'slow-save.json');
    fs.writeFileSync(slowSavePath, modelFile('costly', { ...COSTS, save_mb_per_s: 100 }, 0.1));
    const slowSave = await loadModelFile(runtime, slowSavePath, CONTEXT);
    const aborted = path.join(scratch, 'aborted.bin');
    try {
      // 200 tokens: 20 ms of prefill, then 2 s of saving; the abort comes in the middle.
      const run = slowSave.run(words(200), { prompt_cache_params: { save_prompt_cache: true, prompt_cache_path: aborted } });
      const timer = setTimeout(() => void slowSave.abort(), 600);
      const { chunks, error } = await drain(run, 10_000);
      clearTimeout(timer);
      expect(chunks).toHaveLength(0); // no token before the save is done
      expect((error as { code?: string }).code).toBe('RUN_ABORTED');
      expect(fs.statSync(aborted).size).toBeLessThan(cacheHeader(aborted).bytes + 200 * KV_BYTES_PER_TOKEN);
    } finally {
      await destroyModel(slowSave);
    }

    const byOther = path.join(scratch, 'saved-by-other.bin');
    const other = await loadModelFile(runtime, otherPath, CONTEXT);
    try {
      await other.run(prompt, { prompt_cache_params: { save_prompt_cache: true, prompt_cache_path: byOther } });
    } finally {
      await destroyModel(other);
    }
    // Opening a FIFO for reading would wait for a writer: the load must not.
    const fifo = path.join(scratch, 'fifo.bin');
    execFileSync('mkfifo', [fifo]);
    const cases: Array<[string, string, string]> = [
      ['good', good, ''],
      ['not-a-cache', variant('not-a-cache', 'just some text\n', 0), 'is not an emulated prompt cache file'],
      ['version-1', variant('version-1', `RKLLM-EMULATED-PROMPT-CACHE 1\ntokens ${ids.length}\n${ids.join(' ')}\n`, 0), 'is version 1, which names no model'],
      ['other-model', byOther, 'prompt cache was saved by model other'],
      ['same-name-other-file', aborted, 'prompt cache was saved by model costly'],
      ['bad-count', variant('bad-count', text.replace(/tokens \d+/, 'tokens six')), "no valid 'tokens' line"],
      ['huge-count', variant('huge-count', text.replace(/tokens \d+/, 'tokens 99999999')), "no valid 'tokens' line"],
      ['more-ids-promised', variant('more-ids-promised', text.replace(/tokens \d+/, `tokens ${ids.length + 1}`)), `the header says ${ids.length + 1} token ids, the file holds ${ids.length}`],
      ['id-outside-vocabulary', variant('id-outside-vocabulary', withIds([...ids.slice(0, -1), '151936'])), `holds token id 151936 at position ${ids.length - 1}, outside the vocabulary`],
      ['damaged-ids', variant('damaged-ids', withIds([...ids.slice(0, 2), '-4', ...ids.slice(3)])), 'is truncated or damaged'],
      ['damaged-fingerprint', variant('damaged-fingerprint', text.replace(/fingerprint \S+/, 'fingerprint zz')), "no valid 'fingerprint' line"],
      ['cut-in-header', variant('cut-in-header', text.slice(0, 40), 0), "no 'model' line"],
      ['truncated', variant('truncated', text, kvBytes - 1), 'is truncated'],
      ['overlong', variant('overlong', text, kvBytes + 1), 'is longer than its header says'],
      ['empty', variant('empty', '', 0), 'is not an emulated prompt cache file'],
      ['directory', scratch, 'is not a regular file'],
      ['fifo', fifo, 'is not a regular file'],
      ['missing', path.join(scratch, 'no-such.bin'), 'cannot open prompt cache'],
    ];
    // The aborted save was written by a model with other save figures: another model file.
    const abortedHere = path.join(scratch, 'aborted-here.bin');
    const abortedHeader = cacheHeader(aborted);
    fs.copyFileSync(aborted, abortedHere);
    const costlyFingerprint = text.split('\n')[3];
    const rewritten = fs.readFileSync(aborted).subarray(0, abortedHeader.bytes).toString('latin1').replace(/fingerprint \S+/, costlyFingerprint);
    fs.writeFileSync(abortedHere, rewritten);
    fs.truncateSync(abortedHere, fs.statSync(aborted).size);
    cases.push(['aborted-save', abortedHere, 'is truncated']);

    const badModel = path.join(scratch, 'bad-speed.json');
    fs.writeFileSync(badModel, modelFile('bad', { ...COSTS, save_mb_per_s: 0 }));
    const script = `
      const lib = require(${JSON.stringify(DIST_INDEX)});
      const cases = ${JSON.stringify(cases.map(([name, file]) => [name, file]))};
      (async () => {
        const runtime = await lib.openRuntime({ path: 'sim', abi: '1.3' });
        const model = await runtime.loadModel({ model_path: ${JSON.stringify(costlyPath)}, max_context_len: 4096 });
        const results = {};
        for (const [name, file] of cases) {
          process.stderr.write('case ' + name + '\\n');
          results[name] = await model.loadPromptCache(file).then((code) => code, (error) => error.code);
        }
        process.stderr.write('case bad-model-file\\n');
        results['bad-model-file'] = await runtime
          .loadModel({ model_path: ${JSON.stringify(badModel)}, extend_param: { base_domain_id: 1 } })
          .then(() => 'loaded', (error) => error.code);
        process.stderr.write('case end\\n');
        await model.destroy();
        console.log(JSON.stringify(results));
      })().catch((error) => {
        console.error('child failed:', error && error.stack ? error.stack : error);
        process.exitCode = 1;
      });
    `;
    const outcome = await runChild(script, 30_000);
    expect(outcome).toMatchObject({ timedOut: false, code: 0, signal: null });
    const results = JSON.parse(outcome.stdout.trim().split('\n').pop()!);
    const sections = new Map<string, string>();
    for (const section of outcome.stderr.split(/^case /m).slice(1)) {
      const newline = section.indexOf('\n');
      sections.set(section.slice(0, newline), section.slice(newline + 1));
    }
    for (const [name, , why] of cases) {
      const log = sections.get(name);
      if (name === 'good') {
        expect([name, results[name], log]).toEqual([name, 0, '']);
        continue;
      }
      expect([name, results[name]]).toEqual([name, 'CALL_FAILED']);
      const errorLines = (log ?? '').split('\n').filter((line) => line.startsWith('E rkllm: '));
      expect([name, errorLines.length]).toEqual([name, 1]);
      expect([name, errorLines[0]]).toEqual([name, expect.stringContaining(why)]);
    }
    expect(results['bad-model-file']).toBe('MODEL_INIT_FAILED');
    expect(sections.get('bad-model-file')).toContain('prompt_cache.save_mb_per_s must be a number > 0');
  }, 60_000);

  describe('answers do not depend on where earlier turns came from', () => {
    let instant: Model;
    const chatml = chatTemplatePreset('chatml');

    beforeAll(async () => {
      instant = await loadSim(runtime, 'instant');
      await instant.setChatTemplate(chatml.systemPrompt('You answer briefly.'), chatml.prefix, chatml.postfix);
    }, 30_000);

    afterAll(async () => {
      await destroyModel(instant);
    }, 30_000);

    /** The last turn run on top of a KV cache holding the earlier ones, and the whole conversation re-sent into a cleared cache. */
    async function bothWays(earlier: string[], last: TemplateTurn): Promise<{ viaKv: string; viaHistory: string }> {
      await instant.clearKvCache(false);
      const turns: TemplateTurn[] = [];
      for (const text of earlier) {
        turns.push({ role: 'user', text });
        const answer = await instant.run(text, { keep_history: 1 });
        turns.push({ role: 'assistant', text: answer.text });
      }
      const input = (text: string) => ({ input_type: RKLLMInputType.RKLLM_INPUT_PROMPT, role: last.role === 'tool' ? 'tool' : 'user', prompt_input: text });
      const viaKv = (await instant.run(input(last.text), { keep_history: 1 })).text;
      await instant.clearKvCache(false);
      const whole = renderConversation(chatml, [...turns, last], 'tool_response');
      expect(whole.length).toBeGreaterThan(last.text.length); // the history really is in it
      const viaHistory = (await instant.run(input(whole))).text;
      return { viaKv, viaHistory };
    }

    test('a generic answer at turn 3', async () => {
      const last: TemplateTurn = { role: 'user', text: 'And what about the lighthouse keeper?' };
      const { viaKv, viaHistory } = await bothWays(['Tell me about the harbour at dawn.', 'Who works there?'], last);
      expect(viaHistory).toBe(viaKv);
      // The answer still depends on the turn itself.
      const other = await bothWays(['Tell me about the harbour at dawn.', 'Who works there?'], { role: 'user', text: 'And the fishermen?' });
      expect(other.viaKv).not.toBe(viaKv);
    });

    test('"count to N" asked at turn 2, after a turn that asked something else', async () => {
      const { viaKv, viaHistory } = await bothWays(['echo: not this one'], { role: 'user', text: 'now count to 4' });
      expect(viaKv).toBe('1, 2, 3, 4');
      expect(viaHistory).toBe('1, 2, 3, 4');
    });

    test('a tool response as the last turn', async () => {
      const { viaKv, viaHistory } = await bothWays(['What is the weather in Lyon?'], { role: 'tool', text: '{"temp_c": 21}' });
      expect(viaKv).toBe('The tool answered "{"temp_c": 21}", and that settles it.');
      expect(viaHistory).toBe(viaKv);
    });
  });
});
