#include "emulator/abi_convert.h"

#include <cstdio>
#include <cstring>
#include <initializer_list>

#include "emulator/text_generator.h"

namespace emu {

namespace {

// The 1.2 image marker strings of the default parameters point here: static, never freed.
constexpr const char kEmptyString[] = "";

// Whether the tokens × embedding_size floats at data are read: arrays for more tokens than the
// context holds are not (that run fails with "context length exceeded" anyway).
bool readable_embeddings(const float* data, uint64_t tokens, const EngineSettings& settings) {
  return data && tokens > 0 && tokens <= static_cast<uint64_t>(settings.max_context_len);
}

void hash_embeddings(const float* data, uint64_t tokens, const EngineSettings& settings, SeedHasher* hasher) {
  if (!readable_embeddings(data, tokens, settings)) return;
  hasher->add(data, tokens * static_cast<uint64_t>(settings.model.embedding_size) * sizeof(float));
}

// n × m without wrapping (saturates), for counts that come straight from the caller.
uint64_t times(uint64_t a, uint64_t b) {
  if (a != 0 && b > UINT64_MAX / a) return UINT64_MAX;
  return a * b;
}

[[maybe_unused]] uint64_t plus(uint64_t a, uint64_t b) { return b > UINT64_MAX - a ? UINT64_MAX : a + b; }

uint32_t float_bits(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof(bits));
  return bits;
}

// One media block as the "describe the media" answer reports it: the counts, a hash of every
// float read and the first and last floats' bit patterns, and the tags, so that a test can prove
// the bytes and strings reached the runtime intact (docs/emulated-runtime.md, "Inputs").
void describe_block(const char* kind, const std::string& counts, const float* data, uint64_t tokens,
                    std::initializer_list<const char*> tags, const EngineSettings& settings, std::string* report) {
  if (!data) return;
  if (!report->empty()) report->append("; ");
  report->append(kind).append(": ").append(counts).append(" tokens");
  if (!readable_embeddings(data, tokens, settings)) {
    report->append(", not read (more tokens than the context)");
  } else {
    const uint64_t count = tokens * static_cast<uint64_t>(settings.model.embedding_size);
    char line[160];
    std::snprintf(line, sizeof(line), " x %d floats, fnv1a64 %016llx, first 0x%08x, last 0x%08x",
                  settings.model.embedding_size,
                  static_cast<unsigned long long>(SeedHasher().add(data, count * sizeof(float)).value()),
                  float_bits(data[0]), float_bits(data[count - 1]));
    report->append(line);
  }
  if (tags.size() > 0) report->append(", tags");
  for (const char* tag : tags) {
    report->append(" \"").append(tag ? tag : "(null)").append("\"");
  }
}

std::string counts_text(std::initializer_list<uint64_t> counts) {
  std::string text;
  for (uint64_t count : counts) {
    if (!text.empty()) text.append(" x ");
    text.append(std::to_string(count));
  }
  return text;
}

bool copy_multimodal(const abi::MultimodalInput& in, const EngineSettings& settings, RunRequest* request,
                     SeedHasher* hasher, std::string* error) {
  if (!in.prompt) {
    *error = "multimodal_input.prompt is NULL";
    return false;
  }
  request->has_text = true;
  request->text = in.prompt;
  std::string& report = request->media_report;
#if RKLLM_EMULATED_ABI == 12
  uint64_t image_tokens = times(in.n_image, in.n_image_tokens);
  hash_embeddings(in.image_embed, image_tokens, settings, hasher);
  describe_block("image", counts_text({in.n_image, in.n_image_tokens}), in.image_embed, image_tokens, {}, settings,
                 &report);
  request->embedded_tokens = image_tokens;
#else
  const auto& image = in.image;
  const auto& video = in.video;
  uint64_t image_tokens = times(image.n_image, image.n_image_tokens);
  uint64_t video_tokens = times(times(video.n_video, video.n_frame_per_video), video.n_frame_tokens);
  hash_embeddings(image.image_embed, image_tokens, settings, hasher);
  hash_embeddings(video.video_embed, video_tokens, settings, hasher);
  describe_block("image", counts_text({image.n_image, image.n_image_tokens}), image.image_embed, image_tokens,
                 {image.image_start, image.image_end, image.image_content}, settings, &report);
  describe_block("video", counts_text({video.n_video, video.n_frame_per_video, video.n_frame_tokens}),
                 video.video_embed, video_tokens, {video.video_start, video.video_end, video.video_content},
                 settings, &report);
  request->embedded_tokens = plus(image_tokens, video_tokens);
#endif
#if RKLLM_EMULATED_ABI == 131
  const auto& audio = in.audio;
  uint64_t audio_tokens = times(audio.n_audio, audio.n_audio_tokens);
  hash_embeddings(audio.audio_embed, audio_tokens, settings, hasher);
  describe_block("audio", counts_text({audio.n_audio, audio.n_audio_tokens}), audio.audio_embed, audio_tokens,
                 {audio.audio_start, audio.audio_end, audio.audio_content}, settings, &report);
  request->embedded_tokens = plus(request->embedded_tokens, audio_tokens);
#endif
  if (report.empty()) report = "no media";
  return true;
}

}  // namespace

abi::Param default_param() {
  abi::Param param;
  std::memset(&param, 0, sizeof(param));
  param.model_path = nullptr;
  param.max_context_len = 512;
  param.max_new_tokens = 256;
  param.top_k = 40;
  param.n_keep = 0;
  param.top_p = 0.9f;
  param.temperature = 0.8f;
  param.repeat_penalty = 1.1f;
  param.frequency_penalty = 0.0f;
  param.presence_penalty = 0.0f;
  param.mirostat = 0;
  param.mirostat_tau = 5.0f;
  param.mirostat_eta = 0.1f;
  param.skip_special_token = true;
  param.is_async = false;
#if RKLLM_EMULATED_ABI == 12
  param.img_start = kEmptyString;
  param.img_end = kEmptyString;
  param.img_content = kEmptyString;
#else
  param.ignore_eos_token = false;
#endif
  param.extend_param.base_domain_id = 0;
  param.extend_param.embed_flash = 0;
  param.extend_param.enabled_cpus_num = 4;
  param.extend_param.enabled_cpus_mask = 0;
  param.extend_param.n_batch = 1;
  param.extend_param.use_cross_attn = 0;
  return param;
}

bool settings_from_abi(const abi::Param& param, abi::InitCallbackArg callback, EngineSettings* settings,
                       std::string* error) {
  if (!param.model_path || !param.model_path[0]) {
    *error = "param->model_path is NULL or empty";
    return false;
  }
  if (param.max_context_len <= 0) {
    *error = "param->max_context_len must be > 0 (got " + std::to_string(param.max_context_len) + ")";
    return false;
  }
#if RKLLM_EMULATED_ABI == 12
  settings->callback = callback;
  settings->default_userdata = nullptr;
  settings->ignore_eos_token = false;
#else
  if (!callback) {
    *error = "the callbacks argument is NULL";
    return false;
  }
  settings->callback = callback->result_callback;
  settings->default_userdata = callback->result_userdata;
  settings->ignore_eos_token = param.ignore_eos_token;
#endif
  if (!settings->callback) {
    *error = "no result callback given";
    return false;
  }
  settings->model_path = param.model_path;
  settings->max_context_len = param.max_context_len;
  settings->max_new_tokens = param.max_new_tokens;
  settings->base_domain_id = param.extend_param.base_domain_id;
  settings->n_batch = param.extend_param.n_batch == 0 ? 1 : param.extend_param.n_batch;
  return true;
}

bool request_from_abi(const abi::Input* input, const abi::InferParam* infer, void* userdata,
                      const EngineSettings& settings, RunRequest* request, std::string* error) {
  if (!input || !infer) {
    *error = input ? "infer_params is NULL" : "input is NULL";
    return false;
  }
  if (infer->mode != rkllm::kModeGenerate && infer->mode != rkllm::kModeLastHiddenLayer &&
      infer->mode != rkllm::kModeLogits) {
    *error = "unknown infer mode " + std::to_string(infer->mode);
    return false;
  }
  request->mode = static_cast<rkllm::InferMode>(infer->mode);
  request->is_tool_response = input->role && std::strcmp(input->role, "tool") == 0;
  request->enable_thinking = input->enable_thinking;
  request->userdata = userdata;
  request->keep_history = infer->keep_history != 0;

  SeedHasher embeddings;
  switch (input->input_type) {
    case rkllm::kInputPrompt:
      if (!input->prompt_input) {
        *error = "prompt_input is NULL";
        return false;
      }
      request->has_text = true;
      request->text = input->prompt_input;
      break;
    case rkllm::kInputToken:
      if (!input->token_input.input_ids && input->token_input.n_tokens > 0) {
        *error = "token_input.input_ids is NULL";
        return false;
      }
      request->token_count = input->token_input.n_tokens;
      // More ids than the context holds make the run fail with "context length exceeded"; they
      // are not copied.
      if (request->token_count > static_cast<uint64_t>(settings.max_context_len)) break;
      request->token_ids.assign(input->token_input.input_ids, input->token_input.input_ids + input->token_input.n_tokens);
      break;
    case rkllm::kInputEmbed:
      if (!input->embed_input.embed && input->embed_input.n_tokens > 0) {
        *error = "embed_input.embed is NULL";
        return false;
      }
      request->embedded_tokens = input->embed_input.n_tokens;
      hash_embeddings(input->embed_input.embed, input->embed_input.n_tokens, settings, &embeddings);
      break;
    case rkllm::kInputMultimodal:
      if (!copy_multimodal(input->multimodal_input, settings, request, &embeddings, error)) return false;
      break;
    default:
      *error = "unknown input_type " + std::to_string(input->input_type);
      return false;
  }
  request->input_type = static_cast<rkllm::InputType>(input->input_type);
  request->embedding_hash = embeddings.value();

  if (infer->lora_params && infer->lora_params->lora_adapter_name && infer->lora_params->lora_adapter_name[0]) {
    request->has_lora = true;
    request->lora_name = infer->lora_params->lora_adapter_name;
  }
  if (infer->prompt_cache_params && infer->prompt_cache_params->save_prompt_cache) {
    request->save_prompt_cache = true;
    const char* path = infer->prompt_cache_params->prompt_cache_path;
    request->prompt_cache_path = path && path[0] ? path : "./prompt_cache.bin";
  }
#if RKLLM_EMULATED_ABI_13_FAMILY
  if (infer->sampling_params) {
    const abi::SamplingParam& s = *infer->sampling_params;
    SeedHasher sampling;
    sampling.add(&s.top_k, sizeof(s.top_k)).add(&s.top_p, sizeof(s.top_p)).add(&s.temperature, sizeof(s.temperature));
    sampling.add(&s.repeat_penalty, sizeof(s.repeat_penalty)).add(&s.frequency_penalty, sizeof(s.frequency_penalty));
    sampling.add(&s.presence_penalty, sizeof(s.presence_penalty)).add(&s.mirostat, sizeof(s.mirostat));
    sampling.add(&s.mirostat_tau, sizeof(s.mirostat_tau)).add(&s.mirostat_eta, sizeof(s.mirostat_eta));
    request->has_sampling = true;
    request->sampling_hash = sampling.value();
  }
  request->max_new_tokens = infer->max_new_tokens > 0 ? infer->max_new_tokens : 0;
#endif
  return true;
}

}  // namespace emu
