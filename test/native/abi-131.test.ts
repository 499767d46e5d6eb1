// ABI 1.3.1 through its emulated runtime: opening it by every name, the model's embedding size
// learnt at init, image, video and audio embeddings (numbers, Float32Array, base64) that reach the
// runtime byte for byte, embedding sizes checked before the call, audio refused where the layout has
// no audio block, and the C ABI as a C program of its own declares it (rkllm_run_async included).

import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { emulatedRuntimePath, openRuntime, type Model, type MultimodalInput, type RKLLMInput, type Runtime } from '../../lib';
import { blockFloats, describeMedia, toBase64, writeEmbeddingModel, type MediaBlock } from './media';
import { destroyModel, loadModelFile, loadSim, makeScratchDir, openSim, rejectionOf, removeScratchDir } from './helpers';

const EMBEDDING_SIZE = 8; // of the model written for these tests: small arrays, every float checked
const TAGS = {
  image: ['<img>', '</img>', '<image>'],
  video: ['<vid>', '</vid>', '<video>'],
  audio: ['<|audio>', '<audio|>', '<|audio|>'],
} as const;

/** An image of 2 x 3 tokens, a video of 1 x 2 x 2 and an audio clip of 1 x 5, each with its tags. */
function mediaBlocks(seed: number): MediaBlock[] {
  const block = (kind: MediaBlock['kind'], counts: number[], offset: number): MediaBlock => ({
    kind,
    counts,
    floats: blockFloats(counts, EMBEDDING_SIZE, seed + offset),
    tags: [...TAGS[kind]],
  });
  return [block('image', [2, 3], 0), block('video', [1, 2, 2], 1), block('audio', [1, 5], 2)];
}

/** The multimodal input carrying these blocks, each array written the way `write` says. */
function multimodalInput(blocks: MediaBlock[], write: (floats: Float32Array) => MultimodalInput['image_embed']): MultimodalInput {
  const input: MultimodalInput = { prompt: '<image><video><|audio|> Please describe the media.' };
  for (const { kind, counts, floats, tags } of blocks) {
    const [start, end, content] = tags!;
    if (kind === 'image') {
      Object.assign(input, { image_embed: write(floats), n_image: counts[0], n_image_tokens: counts[1], image_width: 4, image_height: 4 });
      Object.assign(input, { image_start: start, image_end: end, image_content: content });
    } else if (kind === 'video') {
      Object.assign(input, { video_embed: write(floats), n_video: counts[0], n_frame_per_video: counts[1], n_frame_tokens: counts[2] });
      Object.assign(input, { video_start: start, video_end: end, video_content: content, frame_width: 4, frame_height: 4 });
    } else {
      Object.assign(input, { audio_embed: write(floats), n_audio: counts[0], n_audio_tokens: counts[1] });
      Object.assign(input, { audio_start: start, audio_end: end, audio_content: content });
    }
  }
  return input;
}

const WRITINGS: [string, (floats: Float32Array) => MultimodalInput['image_embed']][] = [
  ['arrays of numbers', (floats) => Array.from(floats)],
  ['Float32Arrays', (floats) => floats],
  ['base64 of little-endian float32', (floats) => toBase64(floats)],
];

let scratch: string;
let modelPath: string;

beforeAll(() => {
  scratch = makeScratchDir('abi-131');
  modelPath = writeEmbeddingModel(scratch, 'embedding-8', EMBEDDING_SIZE);
});

afterAll(() => removeScratchDir(scratch));

describe('opening ABI 1.3.1', () => {
  test('"sim" with ABI 1.3.1 opens the 1.3.1 build, which says so by its marker', async () => {
    const runtime = await openSim('1.3.1');
    expect(runtime.info).toMatchObject({ abi: '1.3.1', abiSource: 'emulated-marker', emulated: true });
    expect(path.basename(runtime.info.path)).toBe('librkllmrt-emulated-1.3.1.so');
    const defaults = runtime.createDefaultParam();
    expect(defaults.ignore_eos_token).toBe(false);
    expect(defaults).not.toHaveProperty('img_start');
  });

  test('by the release number, and by ABI "1.3", which the marker settles as 1.3.1', async () => {
    const byRelease = await openRuntime({ path: emulatedRuntimePath('1.3.1'), abi: '1.3.1' });
    expect(byRelease.info).toMatchObject({ abi: '1.3.1', abiSource: 'explicit', release: '1.3.1' });
    const byFamily = await openRuntime({ path: emulatedRuntimePath('1.3.1'), abi: '1.3' });
    expect(byFamily.info).toMatchObject({ abi: '1.3.1', abiSource: 'explicit' });
    expect(byFamily.info.note).toMatch(/settled as 1\.3\.1 by the emulated runtime's marker/);
    // 1.3.0 is not 1.3.1: the marker contradicts the release asked for.
    const wrong = await rejectionOf(openRuntime({ path: emulatedRuntimePath('1.3.1'), abi: '1.3.0' }));
    expect(wrong.code).toBe('RUNTIME_ABI_MISMATCH');
    expect(wrong.message).toContain('1.3.0');
  });
});

describe('multimodal input on ABI 1.3.1', () => {
  let runtime: Runtime;
  let model: Model;

  beforeAll(async () => {
    runtime = await openSim('1.3.1');
    model = await loadModelFile(runtime, modelPath);
  }, 60_000);

  afterAll(() => destroyModel(model));

  test('the model tells its embedding size at init (a one-token hidden-layer run)', async () => {
    expect(model.embeddingSize).toBe(EMBEDDING_SIZE);
    // That run left nothing behind.
    expect(model.getKvCacheSize()).toEqual([0]);
    const instant = await loadSim(runtime, 'instant');
    try {
      expect(instant.embeddingSize).toBe(1536);
    } finally {
      await destroyModel(instant);
    }
  });

  test.each(WRITINGS)('image, video and audio as %s reach the runtime byte for byte, tags included', async (_, write) => {
    const blocks = mediaBlocks(3);
    const result = await model.run({ input_type: 3, multimodal_input: multimodalInput(blocks, write) });
    expect(result.text).toBe(describeMedia(blocks, EMBEDDING_SIZE));
    // 6 + 4 + 5 embedded positions and the prompt's own tokens were prefilled.
    expect(result.perf.prefill_tokens).toBeGreaterThan(15);
  });

  test('audio alone, and other floats: the answer follows the bytes', async () => {
    const audio: MediaBlock = { kind: 'audio', counts: [3, 2], floats: blockFloats([3, 2], EMBEDDING_SIZE, 11), tags: ['', '', '<a>'] };
    const input = { ...multimodalInput([audio], toBase64), prompt: 'describe the media' };
    expect((await model.run({ input_type: 3, multimodal_input: input })).text).toBe(describeMedia([audio], EMBEDDING_SIZE));
    const flipped = new Float32Array(audio.floats);
    flipped[flipped.length - 1] = -flipped[flipped.length - 1] - 1;
    const changed = { ...input, audio_embed: toBase64(flipped) };
    const answer = (await model.run({ input_type: 3, multimodal_input: changed })).text;
    expect(answer).toBe(describeMedia([{ ...audio, floats: flipped }], EMBEDDING_SIZE));
    expect(answer).not.toBe(describeMedia([audio], EMBEDDING_SIZE));
  });

  test('embedding arrays are checked against the embedding size before the call, naming the field', async () => {
    const refused = async (input: RKLLMInput, field: string, reason: RegExp): Promise<void> => {
      const error = await rejectionOf(model.run(input));
      expect(error).toMatchObject({ code: 'INVALID_ARGUMENT', field });
      expect(error.reason).toMatch(reason);
    };
    const multimodal = (members: Omit<MultimodalInput, 'prompt'>): RKLLMInput => ({ input_type: 3, multimodal_input: { prompt: 'x', ...members } });
    const prefix = 'rkllm_input.multimodal_input.';
    // 42 floats are a whole number per token for 2 x 3 image tokens, but not 8 per token.
    await refused(
      multimodal({ image_embed: blockFloats([42], 1, 0), n_image: 2, n_image_tokens: 3 }),
      `${prefix}image_embed`,
      /^holds 42 floats, but n_image x n_image_tokens x the model's embedding size \(8\) is 48$/,
    );
    await refused(
      multimodal({ video_embed: toBase64(blockFloats([2, 2, 3], 1, 0)), n_video: 1, n_frame_per_video: 2, n_frame_tokens: 2 }),
      `${prefix}video_embed`,
      /^holds 12 floats, but n_video x n_frame_per_video x n_frame_tokens x the model's embedding size \(8\) is 32$/,
    );
    await refused(
      multimodal({ audio_embed: Array.from(blockFloats([1, 5], 16, 0)), n_audio: 1, n_audio_tokens: 5 }),
      `${prefix}audio_embed`,
      /^holds 80 floats, but n_audio x n_audio_tokens x the model's embedding size \(8\) is 40$/,
    );
    await refused(multimodal({ audio_embed: [0.5], n_audio_tokens: 1 }), `${prefix}n_audio`, /must be positive when audio_embed is given/);
    await refused(
      { input_type: 2, embed_input: { embed: [1, 2, 3, 4], n_tokens: 2 } },
      'rkllm_input.embed_input.embed',
      /^holds 4 floats, but n_tokens x the model's embedding size \(8\) is 16$/,
    );
    // Nothing of it reached the model, which answers the next run as ever.
    expect(model.isRunning()).toBe(false);
    expect((await model.run('count to 3')).text).toBe('1, 2, 3');
  });

  test('base64 that is not whole float32 values is refused naming the field', async () => {
    const refused = async (audio: string, reason: RegExp): Promise<void> => {
      const error = await rejectionOf(
        model.run({ input_type: 3, multimodal_input: { prompt: 'x', audio_embed: audio, n_audio: 1, n_audio_tokens: 1 } }),
      );
      expect(error).toMatchObject({ code: 'INVALID_ARGUMENT', field: 'rkllm_input.multimodal_input.audio_embed' });
      expect(error.reason).toMatch(reason);
    };
    await refused('AAAAAA==', /^holds 1 floats, but n_audio x n_audio_tokens x the model's embedding size \(8\) is 8$/);
    await refused('AAAA', /holds 3 bytes, not a multiple of 4/);
    await refused('AAAAAAA*', /character 7 is not a base64 digit/);
    await refused('AAAAA', /lone digit/);
    // Padding left out is fine: 8 floats of zero are 32 bytes, 43 digits.
    const unpadded = toBase64(new Float32Array(EMBEDDING_SIZE)).replace(/=+$/, '');
    const input = { prompt: 'describe the media', audio_embed: unpadded, n_audio: 1, n_audio_tokens: 1 };
    expect((await model.run({ input_type: 3, multimodal_input: input })).text).toMatch(/^audio: 1 x 1 tokens x 8 floats/);
  });
});

describe('where the layout has no audio block', () => {
  test.each(['1.2', '1.3'] as const)('ABI %s refuses audio by name, and the 1.3 layouts carry image and video', async (abi) => {
    const runtime = await openSim(abi);
    const model = await loadModelFile(runtime, modelPath);
    try {
      const [image, video, audio] = mediaBlocks(5);
      const error = await rejectionOf(model.run({ input_type: 3, multimodal_input: multimodalInput([image, audio], toBase64) }));
      expect(error).toMatchObject({ code: 'INVALID_ARGUMENT', field: 'rkllm_input.multimodal_input.audio_embed' });
      expect(error.reason).toContain(`needs runtime 1.3.1`);
      expect(error.reason).toContain(`this runtime speaks ABI ${abi}`);
      const blocks = abi === '1.2' ? [{ ...image, tags: undefined }] : [image, video];
      const result = await model.run({ input_type: 3, multimodal_input: multimodalInput(abi === '1.2' ? [image] : blocks, toBase64) });
      expect(result.text).toBe(describeMedia(blocks, EMBEDDING_SIZE));
    } finally {
      await destroyModel(model);
    }
  });
});

// A C program that declares the 1.3.1 structs itself from the documented offsets (not from the
// project's header), opens the emulated 1.3.1 build with dlopen and calls it the way a C client
// would: rkllm_run_async (which the addon never calls: it runs rkllm_run on its own thread) with
// an audio block at offset 144, then rkllm_is_running and rkllm_destroy.
const C_CLIENT = String.raw`
#define _POSIX_C_SOURCE 200809L
#include <dlfcn.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

typedef struct { int32_t base_domain_id; int8_t embed_flash, enabled_cpus_num; uint32_t enabled_cpus_mask;
                 uint8_t n_batch; int8_t use_cross_attn; uint8_t reserved[104]; } ExtendParam;
typedef struct { const char *model_path; int32_t max_context_len, max_new_tokens, top_k, n_keep;
                 float top_p, temperature, repeat_penalty, frequency_penalty, presence_penalty; int32_t mirostat;
                 float mirostat_tau, mirostat_eta; bool skip_special_token, ignore_eos_token, is_async;
                 ExtendParam extend_param; } Param;
typedef struct { float *embed; size_t n_tokens; size_t n_images; const char *start, *end, *content;
                 size_t width, height; } Image;
typedef struct { float *embed; size_t n_frame_tokens, n_frame_per_video, n_video; const char *start, *end, *content;
                 size_t width, height; } Video;
typedef struct { float *embed; size_t n_audio_tokens, n_audio; const char *start, *end, *content; } Audio;
typedef struct { char *prompt; Image image; Video video; Audio audio; } Multimodal;
typedef struct { const char *role; bool enable_thinking; int32_t input_type; union { const char *prompt; Multimodal mm; }; } Input;
typedef struct { int32_t mode; void *lora, *prompt_cache, *sampling; int32_t keep_history, max_new_tokens; } Infer;
typedef struct { const char *text; int32_t token_id; unsigned char rest[60]; } Result;
typedef int (*ResultCallback)(Result *, void *, int);
typedef struct { ResultCallback result; void *result_userdata; void *tokenizer, *tokenizer_userdata, *embed, *embed_userdata; } Callbacks;

_Static_assert(sizeof(Param) == 184, "RKLLMParam");
_Static_assert(offsetof(Param, extend_param) == 60, "RKLLMParam.extend_param");
_Static_assert(sizeof(Multimodal) == 192 && offsetof(Multimodal, audio) == 144, "RKLLMMultiModalInput");
_Static_assert(offsetof(Multimodal, video) == 72 && sizeof(Audio) == 48, "video and audio blocks");
_Static_assert(sizeof(Input) == 208 && offsetof(Input, mm) == 16, "RKLLMInput");
_Static_assert(sizeof(Infer) == 40 && sizeof(Result) == 72 && sizeof(Callbacks) == 48, "the rest");

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t finished = PTHREAD_COND_INITIALIZER;
static char answer[4096];
static int final_state = -1;

static int on_result(Result *result, void *userdata, int state) {
  pthread_mutex_lock(&lock);
  if ((state == 0 || state == 1) && result->text) strncat(answer, result->text, sizeof(answer) - strlen(answer) - 1);
  if (state == 2 || state == 3) { final_state = state; pthread_cond_signal(&finished); }
  pthread_mutex_unlock(&lock);
  return 0;
}

int main(int argc, char **argv) {
  void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (!lib) { fprintf(stderr, "dlopen: %s\n", dlerror()); return 2; }
  Param (*create_default)(void) = (Param (*)(void))dlsym(lib, "rkllm_createDefaultParam");
  int (*init)(void **, Param *, Callbacks *) = (int (*)(void **, Param *, Callbacks *))dlsym(lib, "rkllm_init");
  int (*run_async)(void *, Input *, Infer *, void *) = (int (*)(void *, Input *, Infer *, void *))dlsym(lib, "rkllm_run_async");
  int (*is_running)(void *) = (int (*)(void *))dlsym(lib, "rkllm_is_running");
  int (*destroy)(void *) = (int (*)(void *))dlsym(lib, "rkllm_destroy");
  if (!create_default || !init || !run_async || !is_running || !destroy) return 3;

  Param param = create_default();
  param.model_path = argv[2];
  param.extend_param.base_domain_id = 7;
  Callbacks callbacks = {on_result, NULL, NULL, NULL, NULL, NULL};
  void *handle = NULL;
  if (init(&handle, &param, &callbacks) != 0) return 4;

  static float audio[5 * 8];
  for (int i = 0; i < 5 * 8; ++i) audio[i] = (float)(((i * 7 + 9 * 13) % 61) - 30) / 16.0f;
  Input input;
  memset(&input, 0, sizeof input);
  input.role = "user";
  input.input_type = 3;
  input.mm.prompt = (char *)"<|audio|> describe the media";
  input.mm.audio.embed = audio;
  input.mm.audio.n_audio = 1;
  input.mm.audio.n_audio_tokens = 5;
  input.mm.audio.start = "<|audio>";
  input.mm.audio.end = "<audio|>";
  input.mm.audio.content = "<|audio|>";
  Infer infer;
  memset(&infer, 0, sizeof infer);

  struct timespec deadline;
  clock_gettime(CLOCK_REALTIME, &deadline);
  deadline.tv_sec += 10;
  pthread_mutex_lock(&lock);
  int code = run_async(handle, &input, &infer, NULL);
  while (code == 0 && final_state < 0) {
    if (pthread_cond_timedwait(&finished, &lock, &deadline) != 0) break;
  }
  pthread_mutex_unlock(&lock);
  // The run may still be winding down after FINISH; it is over within the bound.
  for (int i = 0; i < 1000 && is_running(handle) == 1; ++i) {
    struct timespec pause = {0, 1000000};
    nanosleep(&pause, NULL);
  }
  int running = is_running(handle);
  int destroyed = destroy(handle);
  printf("run_async %d final %d running %d destroy %d\n%s\n", code, final_state, running, destroyed, answer);
  return 0;
}
`;

test('a C program of its own, with the documented 1.3.1 offsets, runs audio through rkllm_run_async', () => {
  const source = path.join(scratch, 'client.c');
  const binary = path.join(scratch, 'client');
  fs.writeFileSync(source, C_CLIENT);
  execFileSync('cc', ['-std=c11', '-O1', '-o', binary, source, '-ldl', '-lpthread'], { stdio: 'pipe', timeout: 60_000 });
  const output = execFileSync(binary, [emulatedRuntimePath('1.3.1'), modelPath], { encoding: 'utf8', timeout: 20_000 });
  // The library's own init line (as the real one prints to stdout) comes first.
  const [banner, status, answer] = output.split('\n');
  expect(banner).toBe('I rkllm: rkllm-runtime version: 1.3.1-emulated, rknpu driver version: 0.9.8, platform: RK3588');
  expect(status).toBe('run_async 0 final 2 running 0 destroy 0');
  const audio: MediaBlock = { kind: 'audio', counts: [1, 5], floats: blockFloats([1, 5], EMBEDDING_SIZE, 9), tags: ['<|audio>', '<audio|>', '<|audio|>'] };
  expect(answer).toBe(describeMedia([audio], EMBEDDING_SIZE));
});
