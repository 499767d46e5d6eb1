// The emulated prompt cache file. The real runtime dumps NPU KV memory; the emulator keeps the
// prompt's token ids as text, so the file is real, checkable and small to write, and then extends
// the file (sparse, nothing written) to the size the KV state would take, so whoever budgets
// cache files by size sees honest sizes. Format version 2 (docs/emulated-runtime.md, "Prompt cache"):
//
//   RKLLM-EMULATED-PROMPT-CACHE 1\n   (the file type; the same line in every version)
//   version 2\n
//   model <name>\n                    (the saving model's name; control bytes written as '?')
//   fingerprint <16 hex digits>\n     (FNV-1a 64 of the saving model file's bytes)
//   kv_bytes_per_token <N>\n
//   tokens <count>\n
//   <id> <id> ... <id>\n              (count decimal ids separated by single spaces; empty when 0)
//   <count x N bytes of holes>        (the KV state the cache stands for)
//
// Version 1 files (the first line, then "tokens <count>" and the ids) name no model and are refused.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace emu {

// The model a cache belongs to, and what it takes per token.
struct PromptCacheOwner {
  std::string name;
  uint64_t fingerprint = 0;
  int64_t kv_bytes_per_token = 0;
  int32_t vocab_size = 0;
};

// How long moving tokens x kv_bytes_per_token bytes takes at mb_per_s (10^6 bytes per second);
// 0 when mb_per_s is 0 (free).
inline double prompt_cache_transfer_ms(uint64_t tokens, int64_t kv_bytes_per_token, double mb_per_s) {
  if (mb_per_s <= 0 || kv_bytes_per_token <= 0) return 0;
  return static_cast<double>(tokens) * static_cast<double>(kv_bytes_per_token) / (mb_per_s * 1000.0);
}

// Writes the header and ids, then sizes the file to header + kv_bytes_present (at most the full
// ids.size() x kv_bytes_per_token: less stands for a save cut short, which loads as truncated).
bool write_prompt_cache(const std::string& path, const PromptCacheOwner& owner, const std::vector<int32_t>& ids,
                        uint64_t kv_bytes_present, std::string* error);

// Reads the header and ids only, and checks the file is exactly as large as the header says.
// Fails (with *error saying why) on anything else: not a cache, version 1, saved by another model,
// a bad count, ids outside owner's vocabulary, a truncated or overlong file.
bool read_prompt_cache(const std::string& path, const PromptCacheOwner& owner, std::vector<int32_t>* ids,
                       std::string* error);

}  // namespace emu
