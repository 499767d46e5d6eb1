// ABI-neutral copies of what rkllm_init and rkllm_run receive. abi_convert.cc fills them from the
// 1.2, 1.3 or 1.3.1 structs at call time, so the engine never touches caller memory after a call returns.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "abi/rkllm_abi.h"
#include "emulator/model_file.h"

namespace emu {

struct EngineSettings {
  std::string model_path;
  ModelSpec model;  // filled from model_path by create_engine
  int32_t max_context_len = 0;
  int32_t max_new_tokens = 0;  // <= 0: limited only by the context
  bool ignore_eos_token = false;
  int32_t base_domain_id = 0;
  int32_t n_batch = 1;
  rkllm::ResultCallback callback = nullptr;
  void* default_userdata = nullptr;  // used when rkllm_run gets userdata NULL
};

struct RunRequest {
  rkllm::InputType input_type = rkllm::kInputPrompt;
  rkllm::InferMode mode = rkllm::kModeGenerate;
  bool is_tool_response = false;
  bool enable_thinking = false;
  // Prompt text (prompt input, or the multimodal prompt).
  bool has_text = false;
  std::string text;
  // Token input: n_tokens, and the ids copied as given (validated on the handle's thread).
  uint64_t token_count = 0;
  std::vector<int32_t> token_ids;
  // Prompt positions filled by embeddings: embed input n_tokens, or multimodal image/video tokens.
  uint64_t embedded_tokens = 0;
  // Hash of every embedding float read from the caller (embed input, image, video and audio embeds).
  uint64_t embedding_hash = 0;
  // Multimodal input: what arrived of each media block (counts, a hash, tags), for the answer to
  // "describe the media".
  std::string media_report;
  bool has_lora = false;
  std::string lora_name;
  bool save_prompt_cache = false;
  std::string prompt_cache_path;
  // 1.3 sampling_params, folded into a hash when given.
  bool has_sampling = false;
  uint64_t sampling_hash = 0;
  bool keep_history = false;
  int32_t max_new_tokens = 0;  // > 0 overrides the init value (1.3)
  void* userdata = nullptr;
};

}  // namespace emu
