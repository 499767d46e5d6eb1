// Telling what a library is before and after dlopen: the ELF check that names a library built for
// another machine, the ABI by release number, the release read from a version banner in the
// library's .rodata, and what ABI '1.3' becomes when the release cannot be told (the 1.3.1 layout
// with its audio block zeroed, checked here byte by byte by a library that reads it).

import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { emulatedRuntimePath, openRuntime, type AbiSetting, type RKLLMInput } from '../../lib';
import { makeScratchDir, rejectionOf, removeScratchDir } from './helpers';


// A stand-in librkllmrt of the 1.3 family, built here: rkllm_run answers, in one token, whether
// the 48 bytes after a 1.3.0 RKLLMInput (the 1.3.1 audio block, 160..207) are all zero. With
// BANNER defined it carries the runtime's init banner with that release number.
const LIBRARY_SOURCE = String.raw`
#include <stdio.h>
#include <string.h>
typedef struct { unsigned char bytes[184]; } param13_t;
typedef struct { const char *text; int token_id; unsigned char rest[60]; } result_t;
typedef int (*callback_t)(result_t *, void *, int);
static callback_t result_callback;
static void *result_userdata;
#ifdef BANNER
void rkllm_print_banner(const char *driver, const char *platform) {
  printf("I rkllm: rkllm-runtime version: " BANNER ", rknpu driver version: %s, platform: %s\n", driver, platform);
}
#endif
param13_t rkllm_createDefaultParam(void) { param13_t p; memset(&p, 0, sizeof p); return p; }
int rkllm_init(void **handle, void *param, void **callbacks) {
  result_callback = (callback_t)callbacks[0];
  result_userdata = callbacks[1];
  *handle = (void *)&result_callback;
  return 0;
}
int rkllm_run(void *handle, void *input, void *infer, void *userdata) {
  const unsigned char *bytes = input;
  int zero = 1;
  for (int i = 160; i < 208; ++i) zero = zero && bytes[i] == 0;
  result_t result;
  memset(&result, 0, sizeof result);
  result.text = zero ? "audio block zero" : "audio block set";
  void *ud = userdata ? userdata : result_userdata;
  result_callback(&result, ud, 0);
  memset(&result, 0, sizeof result);
  result_callback(&result, ud, 2);
  return 0;
}
int rkllm_load_lora(void *handle, void *adapter) { return -1; }
int rkllm_load_prompt_cache(void *handle, const char *path) { return -1; }
int rkllm_release_prompt_cache(void *handle) { return -1; }
int rkllm_destroy(void *handle) { return 0; }
int rkllm_run_async(void *handle, void *input, void *infer, void *userdata) { return -1; }
int rkllm_abort(void *handle) { return 0; }
int rkllm_is_running(void *handle) { return 0; }
int rkllm_clear_kv_cache(void *handle, int keep, int *start, int *end) { return -1; }
int rkllm_get_kv_cache_size(void *handle, int *sizes) { sizes[0] = 0; return 0; }
int rkllm_set_chat_template(void *handle, const char *a, const char *b, const char *c) { return -1; }
int rkllm_set_function_tools(void *handle, const char *a, const char *b, const char *c) { return -1; }
int rkllm_set_cross_attn_params(void *handle, void *params) { return -1; }
`;

/** A 64-byte ELF header (the first bytes of a shared object) for `machine`. */
function elfHeader(options: { bits: 32 | 64; bigEndian?: boolean; machine: number; flags?: number }): Buffer {
  const header = Buffer.alloc(64);
  header.set([0x7f, 0x45, 0x4c, 0x46, options.bits === 64 ? 2 : 1, options.bigEndian ? 2 : 1, 1]);
  const u16 = (value: number, at: number) => (options.bigEndian ? header.writeUInt16BE(value, at) : header.writeUInt16LE(value, at));
  const u32 = (value: number, at: number) => (options.bigEndian ? header.writeUInt32BE(value, at) : header.writeUInt32LE(value, at));
  u16(3, 16); // ET_DYN
  u16(options.machine, 18);
  u32(1, 20); // EV_CURRENT
  u32(options.flags ?? 0, options.bits === 64 ? 0x30 : 0x24);
  return header;
}

const EM_X86_64 = 62;
const EM_AARCH64 = 183;
const EM_ARM = 40;
const EM_PPC64 = 21;
const HOST = process.arch === 'arm64' ? 'aarch64' : 'x86-64';

let scratch: string;

beforeAll(() => {
  scratch = makeScratchDir('runtime-identify');
});

afterAll(() => removeScratchDir(scratch));

describe('a library for another machine is named as such before dlopen', () => {
  // On an aarch64 machine the foreign 64-bit library is an x86-64 one, elsewhere an aarch64 one.
  const foreign64 = HOST === 'aarch64' ? { machine: EM_X86_64, name: 'x86-64' } : { machine: EM_AARCH64, name: 'aarch64' };
  test.each([
    ['64-bit, another machine', elfHeader({ bits: 64, machine: foreign64.machine }), foreign64.name],
    ['32-bit hard-float ARM', elfHeader({ bits: 32, machine: EM_ARM, flags: 0x05000400 }), 'armhf (32-bit ARM)'],
    ['big-endian', elfHeader({ bits: 64, bigEndian: true, machine: EM_PPC64 }), 'ppc64, big-endian'],
  ])('%s: RUNTIME_WRONG_ARCHITECTURE saying what it is for and what this machine is', async (_, header, builtFor) => {
    const file = path.join(scratch, `foreign-${builtFor.replace(/\W+/g, '-')}.so`);
    fs.writeFileSync(file, header);
    const error = await rejectionOf(openRuntime({ path: file }));
    expect(error.code).toBe('RUNTIME_WRONG_ARCHITECTURE');
    expect(error.message).toContain(`${file}: this librkllmrt is for ${builtFor}; this machine is ${HOST}.`);
    expect(error.message).not.toMatch(/No such file or directory/);
    // An explicit ABI changes nothing: the file cannot be loaded into this process at all.
    expect((await rejectionOf(openRuntime({ path: file, abi: '1.3.1' }))).code).toBe('RUNTIME_WRONG_ARCHITECTURE');
  });

  test("this machine's own ELF header passes the check and reaches dlopen", async () => {
    const file = path.join(scratch, 'native-header-only.so');
    fs.writeFileSync(file, elfHeader({ bits: 64, machine: HOST === 'aarch64' ? EM_AARCH64 : EM_X86_64 }));
    const error = await rejectionOf(openRuntime({ path: file }));
    expect(error.code).toBe('RUNTIME_LOAD_FAILED');
    expect(error.message).toContain('dlopen could not load');
  });
});

describe('the ABI by release number', () => {
  test.each<[AbiSetting, string, string]>([
    ['1.2.1', '1.2', '1.2'],
    ['1.2.3', '1.2', '1.2'],
    ['1.3.0', '1.3', '1.3'],
    ['1.3.1', '1.3.1', '1.3.1'],
  ])('%s opens the emulated %s build as ABI %s, with the release reported', async (release, build, abi) => {
    const runtime = await openRuntime({ path: emulatedRuntimePath(build as '1.2'), abi: release });
    expect(runtime.info).toMatchObject({ abi, abiSource: 'explicit', release });
    // With 'sim' the release picks the build.
    const sim = await openRuntime({ path: 'sim', abi: release });
    expect(sim.info).toMatchObject({ abi, abiSource: 'emulated-marker' });
  });

  test('a release of another layout contradicting the emulated build is refused', async () => {
    const error = await rejectionOf(openRuntime({ path: emulatedRuntimePath('1.3'), abi: '1.3.1' }));
    expect(error.code).toBe('RUNTIME_ABI_MISMATCH');
    expect(error.message).toContain('emulated runtime for ABI 1.3, but ABI 1.3.1 was asked for');
    expect((await rejectionOf(openRuntime({ path: emulatedRuntimePath('1.2'), abi: '1.3.0' }))).code).toBe('RUNTIME_ABI_MISMATCH');
  });

  test.each(['1.2.0', '1.1.4', '1.3.2', '1.3.1b1'])('release %s is not accepted: the supported ones are listed', async (release) => {
    const error = await rejectionOf(openRuntime({ path: 'sim', abi: release as AbiSetting }));
    expect(error).toMatchObject({ code: 'INVALID_ARGUMENT', field: 'options.abi' });
    expect(error.reason).toBe(`expected a release number of 1.2.1, 1.2.2, 1.2.3, 1.3.0, 1.3.1, got "${release}"`);
  });
});

describe('the release in the version banner, and ABI 1.3 when it cannot be told', () => {
  const libraries = new Map<string, string>();
  /** The stand-in library with this banner release (none: no banner; '%s': a banner without one). */
  function library(banner: string | undefined): string {
    const key = banner ?? 'none';
    let file = libraries.get(key);
    if (file === undefined) {
      const source = path.join(scratch, 'stand-in.c');
      fs.writeFileSync(source, LIBRARY_SOURCE);
      file = path.join(scratch, `libstand-in-${libraries.size}.so`);
      const define = banner === undefined ? [] : [`-DBANNER="${banner}"`];
      execFileSync('cc', ['-shared', '-fPIC', '-O1', ...define, '-o', file, source], { stdio: 'pipe', timeout: 60_000 });
      libraries.set(key, file);
    }
    return file;
  }
  const audioRun: RKLLMInput = { input_type: 3, multimodal_input: { prompt: 'x', audio_embed: [0.5], n_audio: 1, n_audio_tokens: 1 } };
  const imageRun: RKLLMInput = { input_type: 3, multimodal_input: { prompt: 'x', image_embed: [0.5], n_image: 1, n_image_tokens: 1 } };

  test.each([
    ['1.3.1', '1.3.1'],
    ['1.3.0', '1.3'],
    ['1.2.2', '1.2'],
  ])('a banner of release %s: ABI %s, told by the version string', async (release, abi) => {
    const runtime = await openRuntime({ path: library(release) });
    expect(runtime.info).toMatchObject({ abi, abiSource: 'version-string', release, emulated: false });
  });

  test('a banner of 1.3.1 with ABI "1.3" asked: settled as 1.3.1, and audio reaches the library', async () => {
    const runtime = await openRuntime({ path: library('1.3.1'), abi: '1.3' });
    expect(runtime.info).toMatchObject({ abi: '1.3.1', abiSource: 'explicit', release: '1.3.1' });
    expect(runtime.info.note).toBe("ABI '1.3' settled as 1.3.1: the file is librkllmrt 1.3.1 by the version banner in its .rodata.");
    const model = await runtime.loadModel({ model_path: __filename });
    try {
      // The stand-in reports no hidden layer: the embedding size is not known, so only the counts are checked.
      expect(model.embeddingSize).toBe(0);
      expect((await model.run(audioRun)).text).toBe('audio block set');
      expect((await model.run(imageRun)).text).toBe('audio block zero');
    } finally {
      await model.destroy();
    }
  });

  test.each([['1.2.0'], ['1.9.0']])('a banner of release %s: RUNTIME_ABI_UNSUPPORTED naming it', async (release) => {
    const error = await rejectionOf(openRuntime({ path: library(release) }));
    expect(error.code).toBe('RUNTIME_ABI_UNSUPPORTED');
    expect(error.message).toContain(`is librkllmrt ${release} by the version banner in its .rodata`);
  });

  test('a banner of 1.2.2 with ABI "1.3" asked: the file contradicts it', async () => {
    const error = await rejectionOf(openRuntime({ path: library('1.2.2'), abi: '1.3' }));
    expect(error.code).toBe('RUNTIME_ABI_MISMATCH');
    expect(error.message).toContain('is librkllmrt 1.2.2 by the version banner in its .rodata, not a 1.3.x');
  });

  test.each([
    ['no banner', undefined],
    ['a banner that prints the release with %s', '%s'],
  ])('%s: unknown alone; with ABI "1.3", the 1.3.1 layout with the audio block zeroed, and audio refused', async (_, banner) => {
    const file = library(banner);
    expect((await rejectionOf(openRuntime({ path: file }))).code).toBe('RUNTIME_ABI_UNKNOWN');
    const runtime = await openRuntime({ path: file, abi: '1.3' });
    expect(runtime.info).toMatchObject({ abi: '1.3', abiSource: 'explicit', emulated: false });
    expect(runtime.info).not.toHaveProperty('release');
    expect(runtime.info.note).toMatch(/^The release of this 1\.3\.x library was not told apart \(no known blob id, no release number in a version banner\)/);
    expect(runtime.info.note).toContain("If it is 1.3.1, choose ABI '1.3.1'.");
    const model = await runtime.loadModel({ model_path: __filename });
    try {
      // A 1.3.1 library given this input finds zeros where its audio block is.
      expect((await model.run(imageRun)).text).toBe('audio block zero');
      const refused = await rejectionOf(model.run(audioRun));
      expect(refused).toMatchObject({ code: 'INVALID_ARGUMENT', field: 'rkllm_input.multimodal_input.audio_embed' });
      expect(refused.reason).toContain("open it with ABI '1.3.1' if it is 1.3.1");
    } finally {
      await model.destroy();
    }
    // Told it is 1.3.1, the same file gets the audio.
    const told = await openRuntime({ path: file, abi: '1.3.1' });
    expect(told.info).toMatchObject({ abi: '1.3.1', abiSource: 'explicit', release: '1.3.1' });
    const model131 = await told.loadModel({ model_path: __filename });
    try {
      expect((await model131.run(audioRun)).text).toBe('audio block set');
    } finally {
      await model131.destroy();
    }
  });
});

