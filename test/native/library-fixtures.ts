// Libraries the runtime loader is tested against, made in the test: ELF headers of other machines
// (64 bytes are all the check before dlopen reads) and a stand-in librkllmrt of the 1.3 family
// compiled with the system's C compiler.

import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';

export const EM_X86_64 = 62;
export const EM_AARCH64 = 183;
export const EM_ARM = 40;
export const EM_PPC64 = 21;

/** This machine, as the loader's message names it. */
export const HOST_MACHINE = process.arch === 'arm64' ? 'aarch64' : 'x86-64';
/** A 64-bit machine that is not this one, and its name in that message. */
export const FOREIGN_64 = HOST_MACHINE === 'aarch64' ? { machine: EM_X86_64, name: 'x86-64' } : { machine: EM_AARCH64, name: 'aarch64' };

/** A 64-byte ELF header (the first bytes of a shared object) for `machine`. */
export function elfHeader(options: { bits: 32 | 64; bigEndian?: boolean; machine: number; flags?: number }): Buffer {
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

/** Compiles the stand-in as `<dir>/<name>`, with the banner of `release` when given; returns its path. */
export function buildStandInLibrary(dir: string, name: string, release?: string): string {
  const source = path.join(dir, `${name}.c`);
  fs.writeFileSync(source, LIBRARY_SOURCE);
  const file = path.join(dir, name);
  const define = release === undefined ? [] : [`-DBANNER="${release}"`];
  execFileSync('cc', ['-shared', '-fPIC', '-O1', ...define, '-o', file, source], { stdio: 'pipe', timeout: 60_000 });
  return file;
}
