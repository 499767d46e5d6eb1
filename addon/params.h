// Plain C++ copies of everything a call hands the runtime. They are read from JavaScript on the
// JS thread (where type errors can be thrown with the field's name) and then used off-thread
// alone: the worker never touches a JS value. Each struct owns its strings and arrays, so every
// pointer built from it stays valid for as long as the struct lives.
#pragma once

#include <napi.h>

#include <cstdint>
#include <string>
#include <vector>

namespace rkllm_serve {

// The layouts the addon speaks. k13 is release 1.3.0, or a 1.3.x whose release was not told
// apart: both are handed the 1.3.1 layout with its audio block zeroed (runtime_api.cc).
enum class Abi { k12, k13, k131 };
const char* AbiName(Abi abi);

struct ModelParams {
  std::string model_path;
  int32_t max_context_len = 0;
  int32_t max_new_tokens = 0;
  int32_t top_k = 0;
  int32_t n_keep = 0;
  float top_p = 0, temperature = 0, repeat_penalty = 0, frequency_penalty = 0, presence_penalty = 0;
  int32_t mirostat = 0;
  float mirostat_tau = 0, mirostat_eta = 0;
  bool skip_special_token = false;
  bool ignore_eos_token = false;                   // 1.3
  bool is_async = false;
  std::string img_start, img_end, img_content;     // 1.2
  int32_t base_domain_id = 0;
  int8_t embed_flash = 0;
  int8_t enabled_cpus_num = 0;
  uint32_t enabled_cpus_mask = 0;
  uint8_t n_batch = 0;
  int8_t use_cross_attn = 0;
};

struct SamplingParams {
  int32_t top_k = 0;
  float top_p = 0, temperature = 0, repeat_penalty = 0, frequency_penalty = 0, presence_penalty = 0;
  int32_t mirostat = 0;
  float mirostat_tau = 0, mirostat_eta = 0;
};

struct MultimodalParams {
  std::string prompt;
  std::vector<float> image_embed;
  uint64_t n_image_tokens = 0, n_image = 0, image_width = 0, image_height = 0;
  std::string image_start, image_end, image_content;  // 1.3
  std::vector<float> video_embed;                     // 1.3
  uint64_t n_frame_tokens = 0, n_frame_per_video = 0, n_video = 0, frame_width = 0, frame_height = 0;
  std::string video_start, video_end, video_content;  // 1.3
  std::vector<float> audio_embed;                     // 1.3.1
  uint64_t n_audio_tokens = 0, n_audio = 0;
  std::string audio_start, audio_end, audio_content;  // 1.3.1
};

struct RunRequest {
  // RKLLMInput
  int32_t input_type = 0;
  std::string role = "user";
  bool enable_thinking = false;
  std::string prompt;
  std::vector<int32_t> token_ids;
  std::vector<float> embed;
  uint64_t embed_n_tokens = 0;
  MultimodalParams multimodal;
  // RKLLMInferParam
  int32_t mode = 0;
  bool has_lora = false;
  std::string lora_adapter_name;
  bool has_prompt_cache = false;
  int32_t save_prompt_cache = 0;
  bool has_prompt_cache_path = false;
  std::string prompt_cache_path;
  bool has_sampling = false;
  SamplingParams sampling;
  int32_t keep_history = 0;
  int32_t max_new_tokens = 0;
};

struct LoraAdapterParams {
  std::string path;
  std::string name;
  float scale = 1.0f;
};

struct CrossAttnParams {
  std::vector<float> k_cache, v_cache, mask;
  std::vector<int32_t> pos;
  int32_t num_tokens = 0;
};

// What a run's embeddings are checked against, besides their own counts.
struct InputLimits {
  // Floats per token of the model (what its GET_LAST_HIDDEN_LAYER reports); 0 when unknown.
  int32_t embedding_size = 0;
  Abi abi = Abi::k13;
};

// Readers: throw RkllmError INVALID_ARGUMENT naming the offending field.
ModelParams ReadModelParams(const Napi::Value& value);
RunRequest ReadRunRequest(const Napi::Value& input, const Napi::Value& infer, const InputLimits& limits);
LoraAdapterParams ReadLoraAdapter(const Napi::Value& value);
CrossAttnParams ReadCrossAttnParams(const Napi::Value& value);
std::string ReadString(const Napi::Value& value, const char* field);
std::vector<int32_t> ReadIntArray(const Napi::Value& value, const char* field);

// Writer: the fields of `abi` only.
Napi::Object ModelParamsToJs(Napi::Env env, const ModelParams& params, Abi abi);

}  // namespace rkllm_serve
