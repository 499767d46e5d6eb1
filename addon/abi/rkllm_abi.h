// The librkllmrt C ABI, written from the facts in docs/rkllm-abi.md (offsets, sizes, enums).
//
// Three layouts exist and dlsym cannot tell them apart, so they are declared side by side:
// namespace abi12 (releases 1.2.1 to 1.2.3), abi13 (release 1.3.0) and abi131 (release 1.3.1,
// which only appends an audio block to the multimodal input). The addon speaks all of them at run
// time; the emulated runtime is compiled once per namespace.
// Every layout is pinned by static_assert so that a wrong edit fails the build, not a board.
#pragma once

#include <cstddef>
#include <cstdint>

namespace rkllm {

using Handle = void*;

// Values shared by both ABIs.
enum CallState : int32_t { kStateNormal = 0, kStateWaiting = 1, kStateFinish = 2, kStateError = 3 };
enum InputType : int32_t { kInputPrompt = 0, kInputToken = 1, kInputEmbed = 2, kInputMultimodal = 3 };
enum InferMode : int32_t { kModeGenerate = 0, kModeLastHiddenLayer = 1, kModeLogits = 2 };

struct ExtendParam {
  int32_t base_domain_id;
  int8_t embed_flash;
  int8_t enabled_cpus_num;
  uint32_t enabled_cpus_mask;
  uint8_t n_batch;
  int8_t use_cross_attn;
  uint8_t reserved[104];
};
static_assert(sizeof(ExtendParam) == 120, "ExtendParam size");
static_assert(offsetof(ExtendParam, enabled_cpus_mask) == 8, "ExtendParam.enabled_cpus_mask");
static_assert(offsetof(ExtendParam, n_batch) == 12, "ExtendParam.n_batch");
static_assert(offsetof(ExtendParam, reserved) == 14, "ExtendParam.reserved");

struct TokenInput {
  int32_t* input_ids;
  size_t n_tokens;
};
struct EmbedInput {
  float* embed;
  size_t n_tokens;
};
struct LoraParam {
  const char* lora_adapter_name;
};
struct PromptCacheParam {
  int32_t save_prompt_cache;
  const char* prompt_cache_path;
};
struct LoraAdapter {
  const char* lora_adapter_path;
  const char* lora_adapter_name;
  float scale;
};
static_assert(sizeof(LoraAdapter) == 24, "LoraAdapter size");

struct CrossAttnParam {
  float* encoder_k_cache;
  float* encoder_v_cache;
  float* encoder_mask;
  int32_t* encoder_pos;
  int32_t num_tokens;
};
static_assert(sizeof(CrossAttnParam) == 40, "CrossAttnParam size");

struct HiddenLayer {
  const float* hidden_states;
  int32_t embd_size;
  int32_t num_tokens;
};
struct Logits {
  const float* logits;
  int32_t vocab_size;
  int32_t num_tokens;
};
struct Perf {
  float prefill_time_ms;
  int32_t prefill_tokens;
  float generate_time_ms;
  int32_t generate_tokens;
  float memory_usage_mb;
};
struct Result {
  const char* text;
  int32_t token_id;
  HiddenLayer last_hidden_layer;
  Logits logits;
  Perf perf;
};
static_assert(sizeof(Result) == 72, "Result size");
static_assert(offsetof(Result, last_hidden_layer) == 16, "Result.last_hidden_layer");
static_assert(offsetof(Result, logits) == 32, "Result.logits");
static_assert(offsetof(Result, perf) == 48, "Result.perf");

// Return values of the result callback.
enum CallbackReturn : int32_t { kContinue = 0, kPause = 1, kReleaseOutput = 2 };

using ResultCallback = int (*)(Result* result, void* userdata, CallState state);
using TokenizerCallback = int (*)(void* userdata, const char* text, int32_t len, int32_t* tokens,
                                  int32_t max_tokens);
using EmbedCallback = int (*)(void* userdata, int32_t* tokens, uint64_t n_tokens, void* embed,
                              uint64_t embed_len);

namespace abi12 {

struct Param {
  const char* model_path;
  int32_t max_context_len;
  int32_t max_new_tokens;
  int32_t top_k;
  int32_t n_keep;
  float top_p;
  float temperature;
  float repeat_penalty;
  float frequency_penalty;
  float presence_penalty;
  int32_t mirostat;
  float mirostat_tau;
  float mirostat_eta;
  bool skip_special_token;
  bool is_async;
  const char* img_start;
  const char* img_end;
  const char* img_content;
  ExtendParam extend_param;
};
static_assert(sizeof(Param) == 208, "1.2 Param size");
static_assert(offsetof(Param, mirostat) == 44, "1.2 Param.mirostat");
static_assert(offsetof(Param, skip_special_token) == 56, "1.2 Param.skip_special_token");
static_assert(offsetof(Param, is_async) == 57, "1.2 Param.is_async");
static_assert(offsetof(Param, img_start) == 64, "1.2 Param.img_start");
static_assert(offsetof(Param, extend_param) == 88, "1.2 Param.extend_param");

struct MultimodalInput {
  char* prompt;
  float* image_embed;
  size_t n_image_tokens;
  size_t n_image;
  size_t image_width;
  size_t image_height;
};
static_assert(sizeof(MultimodalInput) == 48, "1.2 MultimodalInput size");

struct Input {
  const char* role;
  bool enable_thinking;
  int32_t input_type;
  union {
    const char* prompt_input;
    TokenInput token_input;
    EmbedInput embed_input;
    MultimodalInput multimodal_input;
  };
};
static_assert(sizeof(Input) == 64, "1.2 Input size");
static_assert(offsetof(Input, input_type) == 12, "1.2 Input.input_type");
static_assert(offsetof(Input, prompt_input) == 16, "1.2 Input union");

struct InferParam {
  int32_t mode;
  LoraParam* lora_params;
  PromptCacheParam* prompt_cache_params;
  int32_t keep_history;
};
static_assert(sizeof(InferParam) == 32, "1.2 InferParam size");
static_assert(offsetof(InferParam, keep_history) == 24, "1.2 InferParam.keep_history");

// rkllm_init's third argument is the result callback itself.
using InitCallbackArg = ResultCallback;

}  // namespace abi12

namespace abi13 {

struct Param {
  const char* model_path;
  int32_t max_context_len;
  int32_t max_new_tokens;
  int32_t top_k;
  int32_t n_keep;
  float top_p;
  float temperature;
  float repeat_penalty;
  float frequency_penalty;
  float presence_penalty;
  int32_t mirostat;
  float mirostat_tau;
  float mirostat_eta;
  bool skip_special_token;
  bool ignore_eos_token;
  bool is_async;
  ExtendParam extend_param;
};
static_assert(sizeof(Param) == 184, "1.3 Param size");
static_assert(offsetof(Param, ignore_eos_token) == 57, "1.3 Param.ignore_eos_token");
static_assert(offsetof(Param, is_async) == 58, "1.3 Param.is_async");
static_assert(offsetof(Param, extend_param) == 60, "1.3 Param.extend_param");

struct ImageBlock {
  float* image_embed;
  size_t n_image_tokens;
  size_t n_image;
  const char* image_start;
  const char* image_end;
  const char* image_content;
  size_t image_width;
  size_t image_height;
};
static_assert(sizeof(ImageBlock) == 64, "1.3 ImageBlock size");

struct VideoBlock {
  float* video_embed;
  size_t n_frame_tokens;
  size_t n_frame_per_video;
  size_t n_video;
  const char* video_start;
  const char* video_end;
  const char* video_content;
  size_t frame_width;
  size_t frame_height;
};
static_assert(sizeof(VideoBlock) == 72, "1.3 VideoBlock size");

struct MultimodalInput {
  char* prompt;
  ImageBlock image;
  VideoBlock video;
};
static_assert(sizeof(MultimodalInput) == 144, "1.3 MultimodalInput size");
static_assert(offsetof(MultimodalInput, video) == 72, "1.3 MultimodalInput.video");

struct Input {
  const char* role;
  bool enable_thinking;
  int32_t input_type;
  union {
    const char* prompt_input;
    TokenInput token_input;
    EmbedInput embed_input;
    MultimodalInput multimodal_input;
  };
};
static_assert(sizeof(Input) == 160, "1.3 Input size");
static_assert(offsetof(Input, prompt_input) == 16, "1.3 Input union");

struct SamplingParam {
  int32_t top_k;
  float top_p;
  float temperature;
  float repeat_penalty;
  float frequency_penalty;
  float presence_penalty;
  int32_t mirostat;
  float mirostat_tau;
  float mirostat_eta;
};
static_assert(sizeof(SamplingParam) == 36, "1.3 SamplingParam size");

struct InferParam {
  int32_t mode;
  LoraParam* lora_params;
  PromptCacheParam* prompt_cache_params;
  SamplingParam* sampling_params;
  int32_t keep_history;
  int32_t max_new_tokens;
};
static_assert(sizeof(InferParam) == 40, "1.3 InferParam size");
static_assert(offsetof(InferParam, keep_history) == 32, "1.3 InferParam.keep_history");
static_assert(offsetof(InferParam, max_new_tokens) == 36, "1.3 InferParam.max_new_tokens");

struct Callbacks {
  ResultCallback result_callback;
  void* result_userdata;
  TokenizerCallback tokenizer_callback;
  void* tokenizer_userdata;
  EmbedCallback embed_callback;
  void* embed_userdata;
};
static_assert(sizeof(Callbacks) == 48, "1.3 Callbacks size");

// rkllm_init's third argument points at a Callbacks struct.
using InitCallbackArg = Callbacks*;

}  // namespace abi13

namespace abi131 {

// Release 1.3.1 changes nothing but RKLLMMultiModalInput, which gains a trailing audio block.
using abi13::Callbacks;
using abi13::ImageBlock;
using abi13::InferParam;
using abi13::InitCallbackArg;
using abi13::Param;
using abi13::SamplingParam;
using abi13::VideoBlock;

struct AudioBlock {
  float* audio_embed;  // n_audio x n_audio_tokens x embedding size floats
  size_t n_audio_tokens;
  size_t n_audio;
  const char* audio_start;
  const char* audio_end;
  const char* audio_content;
};
static_assert(sizeof(AudioBlock) == 48, "1.3.1 AudioBlock size");

struct MultimodalInput {
  char* prompt;
  ImageBlock image;
  VideoBlock video;
  AudioBlock audio;
};
static_assert(sizeof(MultimodalInput) == 192, "1.3.1 MultimodalInput size");
static_assert(offsetof(MultimodalInput, image) == 8, "1.3.1 MultimodalInput.image");
static_assert(offsetof(MultimodalInput, video) == 72, "1.3.1 MultimodalInput.video");
static_assert(offsetof(MultimodalInput, audio) == 144, "1.3.1 MultimodalInput.audio");
// A 1.3.0 library reads exactly the part before the audio block: the 1.3.1 layout with the block
// zeroed is a valid 1.3.0 input.
static_assert(offsetof(MultimodalInput, audio) == sizeof(abi13::MultimodalInput), "1.3.0 layout is a prefix");

struct Input {
  const char* role;
  bool enable_thinking;
  int32_t input_type;
  union {
    const char* prompt_input;
    TokenInput token_input;
    EmbedInput embed_input;
    MultimodalInput multimodal_input;
  };
};
static_assert(sizeof(Input) == 208, "1.3.1 Input size");
static_assert(offsetof(Input, input_type) == 12, "1.3.1 Input.input_type");
static_assert(offsetof(Input, prompt_input) == 16, "1.3.1 Input union");
static_assert(offsetof(Input, multimodal_input) + offsetof(MultimodalInput, audio) == 160,
              "1.3.1 Input: the audio block starts where the 1.3.0 Input ends");

}  // namespace abi131

// The 15 exported functions, as function-pointer types per ABI. Functions whose signatures do not
// depend on the ABI use plain types; the rest are templated on the namespace's structs.
template <typename ParamT, typename InputT, typename InferT, typename InitCallbackT>
struct FunctionTable {
  ParamT (*createDefaultParam)();
  int (*init)(Handle* handle, ParamT* param, InitCallbackT callback);
  int (*load_lora)(Handle handle, LoraAdapter* adapter);
  int (*load_prompt_cache)(Handle handle, const char* path);
  int (*release_prompt_cache)(Handle handle);
  int (*destroy)(Handle handle);
  int (*run)(Handle handle, InputT* input, InferT* infer, void* userdata);
  int (*run_async)(Handle handle, InputT* input, InferT* infer, void* userdata);
  int (*abort)(Handle handle);
  int (*is_running)(Handle handle);
  int (*clear_kv_cache)(Handle handle, int keep_system_prompt, int* start_pos, int* end_pos);
  int (*get_kv_cache_size)(Handle handle, int* cache_sizes);
  int (*set_chat_template)(Handle handle, const char* system_prompt, const char* prompt_prefix,
                           const char* prompt_postfix);
  int (*set_function_tools)(Handle handle, const char* system_prompt, const char* tools,
                            const char* tool_response_str);
  int (*set_cross_attn_params)(Handle handle, CrossAttnParam* params);
};

using Functions12 = FunctionTable<abi12::Param, abi12::Input, abi12::InferParam, abi12::InitCallbackArg>;
using Functions13 = FunctionTable<abi13::Param, abi13::Input, abi13::InferParam, abi13::InitCallbackArg>;
using Functions131 = FunctionTable<abi131::Param, abi131::Input, abi131::InferParam, abi131::InitCallbackArg>;

// The exported names, in FunctionTable order.
inline constexpr const char* kFunctionNames[15] = {
    "rkllm_createDefaultParam", "rkllm_init",           "rkllm_load_lora",
    "rkllm_load_prompt_cache",  "rkllm_release_prompt_cache", "rkllm_destroy",
    "rkllm_run",                "rkllm_run_async",      "rkllm_abort",
    "rkllm_is_running",         "rkllm_clear_kv_cache", "rkllm_get_kv_cache_size",
    "rkllm_set_chat_template",  "rkllm_set_function_tools", "rkllm_set_cross_attn_params",
};

// The project's emulated runtime exports this extra symbol; the real library does not. It returns
// "1.2", "1.3" or "1.3.1": the ABI that build speaks. The addon looks for it before hashing the file.
inline constexpr const char* kEmulatedAbiSymbol = "rkllm_emulated_runtime_abi";
using EmulatedAbiFn = const char* (*)();

}  // namespace rkllm
