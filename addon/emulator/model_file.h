// The emulated model file: a small JSON document that stands in for a .rkllm model and says how
// the emulated NPU behaves (timings, limits, injected faults). Format: docs/emulated-runtime.md.
#pragma once

#include <cstdint>
#include <string>

namespace emu {

// What the result callbacks carry when a token ends inside a multi-byte UTF-8 character. Which one
// the real runtime does is not documented; docs/rkllm-abi.md ("What WAITING carries") has the
// evidence and why the default is the one Rockchip's demos imply.
enum class WaitingStyle {
  kPartialThenRest,   // WAITING: the token's bytes; the next NORMAL: only the bytes that follow
  kPartialThenWhole,  // WAITING: the token's bytes; NORMAL: every byte since the last NORMAL again
  kEmptyThenWhole,    // WAITING: ""; NORMAL: every byte since the last NORMAL
};

struct ModelSpec {
  std::string name;
  std::string description;
  // Timing profile, in milliseconds.
  double load_ms = 0;
  double prefill_ms_per_token = 0;
  double decode_ms_per_token = 0;
  // Limits of the emulated model.
  int32_t max_context_len = 4096;
  int32_t vocab_size = 151936;
  int32_t embedding_size = 1536;
  // Injected faults; zero or empty means off.
  bool has_init_error = false;
  std::string init_error;
  int64_t error_after_tokens = 0;
  double abort_delay_ms = 0;
  WaitingStyle waiting = WaitingStyle::kEmptyThenWhole;
  // answers.echo_prompt: every text answer is the whole prompt as the runtime templated it, so
  // tests can see what a chat template produced.
  bool echo_prompt = false;
  // Faults that end or freeze the process, as the real library does on bad days; -1 means off
  // for the token counts, since 0 tokens is a meaningful place to fail.
  bool crash_in_init = false;          // SIGSEGV inside rkllm_init
  int64_t crash_after_tokens = -1;     // SIGSEGV where token N+1 would be generated
  int64_t hang_after_tokens = -1;      // the run never calls back again and never returns
  int64_t exit_after_tokens = -1;      // the library calls exit(1)
  bool abort_never_lands = false;      // rkllm_abort blocks forever; the run goes on
  // prompt_cache: what saving and loading a prompt cache costs. The KV state a real cache holds
  // is kv_bytes_per_token per cached token; the speeds are in MB (10^6 bytes) per second, and 0
  // means free (no block: saves and loads cost nothing, and cache files hold no KV bytes).
  int64_t kv_bytes_per_token = 0;
  double save_mb_per_s = 0;
  double load_mb_per_s = 0;
  // Who this model is, for the prompt caches it writes: the file's "name" (or, without one, the
  // file's base name), and a 64-bit FNV-1a hash of the file's bytes, so that a cache is only
  // ever loaded into the model (the very same model file content) that saved it.
  std::string identity_name;
  uint64_t fingerprint = 0;
};

// Reads and validates the model file at path. On failure returns false with *error saying why.
bool load_model_file(const std::string& path, ModelSpec* out, std::string* error);

}  // namespace emu
