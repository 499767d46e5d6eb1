#include "runtime_api.h"

#include <dlfcn.h>

#include <algorithm>
#include <cstring>
#include <type_traits>

namespace rkllm_serve {
namespace {

template <Abi A>
struct AbiTypes;

template <>
struct AbiTypes<Abi::k12> {
  using Param = rkllm::abi12::Param;
  using Input = rkllm::abi12::Input;
  using InferParam = rkllm::abi12::InferParam;
  using Functions = rkllm::Functions12;
};

// 1.3.0 and a 1.3.x whose release is not known get the 1.3.1 input with its audio block zeroed: a
// 1.3.0 library reads only the part before the block (rkllm_abi.h pins that), and a 1.3.1 library
// finds no audio instead of stack bytes where its block would be. Only the input differs, and it is
// passed by pointer, so calling 1.3.0 through the 1.3.1 function types is the same call.
template <>
struct AbiTypes<Abi::k13> {
  using Param = rkllm::abi13::Param;
  using Input = rkllm::abi131::Input;
  using InferParam = rkllm::abi13::InferParam;
  using Functions = rkllm::Functions131;
};

template <>
struct AbiTypes<Abi::k131> {
  using Param = rkllm::abi131::Param;
  using Input = rkllm::abi131::Input;
  using InferParam = rkllm::abi131::InferParam;
  using Functions = rkllm::Functions131;
};

template <Abi A>
class RuntimeApiImpl final : public RuntimeApi {
  using Types = AbiTypes<A>;
  using Param = typename Types::Param;
  using Input = typename Types::Input;
  using InferParam = typename Types::InferParam;
  using Functions = typename Types::Functions;
  static_assert(sizeof(Functions) == 15 * sizeof(void*), "one pointer per exported function");

 public:
  explicit RuntimeApiImpl(rkllm::ResultCallback callback) { callbacks_.result_callback = callback; }

  bool Resolve(void* library, std::vector<std::string>& missing) {
    void** slots = reinterpret_cast<void**>(&fn_);
    for (size_t i = 0; i < 15; ++i) {
      slots[i] = dlsym(library, rkllm::kFunctionNames[i]);
      if (slots[i] == nullptr) missing.emplace_back(rkllm::kFunctionNames[i]);
    }
    return missing.empty();
  }

  Abi abi() const override { return A; }

  ModelParams CreateDefaultParam() const override {
    Param c = fn_.createDefaultParam();
    ModelParams p;
    p.model_path = c.model_path != nullptr ? c.model_path : "";
    p.max_context_len = c.max_context_len;
    p.max_new_tokens = c.max_new_tokens;
    p.top_k = c.top_k;
    p.n_keep = c.n_keep;
    p.top_p = c.top_p;
    p.temperature = c.temperature;
    p.repeat_penalty = c.repeat_penalty;
    p.frequency_penalty = c.frequency_penalty;
    p.presence_penalty = c.presence_penalty;
    p.mirostat = c.mirostat;
    p.mirostat_tau = c.mirostat_tau;
    p.mirostat_eta = c.mirostat_eta;
    p.skip_special_token = c.skip_special_token;
    p.is_async = c.is_async;
    if constexpr (A == Abi::k12) {
      p.img_start = c.img_start != nullptr ? c.img_start : "";
      p.img_end = c.img_end != nullptr ? c.img_end : "";
      p.img_content = c.img_content != nullptr ? c.img_content : "";
    } else {
      p.ignore_eos_token = c.ignore_eos_token;
    }
    p.base_domain_id = c.extend_param.base_domain_id;
    p.embed_flash = c.extend_param.embed_flash;
    p.enabled_cpus_num = c.extend_param.enabled_cpus_num;
    p.enabled_cpus_mask = c.extend_param.enabled_cpus_mask;
    p.n_batch = c.extend_param.n_batch;
    p.use_cross_attn = c.extend_param.use_cross_attn;
    return p;
  }

  int Init(rkllm::Handle* handle, const ModelParams& p) const override {
    Param c{};
    c.model_path = p.model_path.c_str();
    c.max_context_len = p.max_context_len;
    c.max_new_tokens = p.max_new_tokens;
    c.top_k = p.top_k;
    c.n_keep = p.n_keep;
    c.top_p = p.top_p;
    c.temperature = p.temperature;
    c.repeat_penalty = p.repeat_penalty;
    c.frequency_penalty = p.frequency_penalty;
    c.presence_penalty = p.presence_penalty;
    c.mirostat = p.mirostat;
    c.mirostat_tau = p.mirostat_tau;
    c.mirostat_eta = p.mirostat_eta;
    c.skip_special_token = p.skip_special_token;
    c.is_async = p.is_async;
    c.extend_param.base_domain_id = p.base_domain_id;
    c.extend_param.embed_flash = p.embed_flash;
    c.extend_param.enabled_cpus_num = p.enabled_cpus_num;
    c.extend_param.enabled_cpus_mask = p.enabled_cpus_mask;
    c.extend_param.n_batch = p.n_batch;
    c.extend_param.use_cross_attn = p.use_cross_attn;
    if constexpr (A == Abi::k12) {
      c.img_start = p.img_start.c_str();
      c.img_end = p.img_end.c_str();
      c.img_content = p.img_content.c_str();
      return fn_.init(handle, &c, callbacks_.result_callback);
    } else {
      c.ignore_eos_token = p.ignore_eos_token;
      return fn_.init(handle, &c, &callbacks_);
    }
  }

  int Run(rkllm::Handle handle, RunRequest& r, void* userdata) const override {
    Input input;
    // Every byte zero, the union's unused tail included (the audio block a 1.3.1 library reads).
    std::memset(&input, 0, sizeof(input));
    input.role = r.role.c_str();
    input.enable_thinking = r.enable_thinking;
    input.input_type = r.input_type;
    switch (r.input_type) {
      case rkllm::kInputPrompt:
        input.prompt_input = r.prompt.c_str();
        break;
      case rkllm::kInputToken:
        input.token_input.input_ids = r.token_ids.data();
        input.token_input.n_tokens = r.token_ids.size();
        break;
      case rkllm::kInputEmbed:
        input.embed_input.embed = r.embed.data();
        input.embed_input.n_tokens = r.embed_n_tokens;
        break;
      default:
        FillMultimodal(input, r.multimodal);
        break;
    }

    InferParam infer{};
    rkllm::LoraParam lora{};
    rkllm::PromptCacheParam cache{};
    infer.mode = r.mode;
    infer.keep_history = r.keep_history;
    if (r.has_lora) {
      lora.lora_adapter_name = r.lora_adapter_name.c_str();
      infer.lora_params = &lora;
    }
    if (r.has_prompt_cache) {
      cache.save_prompt_cache = r.save_prompt_cache;
      cache.prompt_cache_path = r.has_prompt_cache_path ? r.prompt_cache_path.c_str() : nullptr;
      infer.prompt_cache_params = &cache;
    }
    if constexpr (A != Abi::k12) {
      rkllm::abi13::SamplingParam sampling{};
      if (r.has_sampling) {
        sampling.top_k = r.sampling.top_k;
        sampling.top_p = r.sampling.top_p;
        sampling.temperature = r.sampling.temperature;
        sampling.repeat_penalty = r.sampling.repeat_penalty;
        sampling.frequency_penalty = r.sampling.frequency_penalty;
        sampling.presence_penalty = r.sampling.presence_penalty;
        sampling.mirostat = r.sampling.mirostat;
        sampling.mirostat_tau = r.sampling.mirostat_tau;
        sampling.mirostat_eta = r.sampling.mirostat_eta;
        infer.sampling_params = &sampling;  // must stay NULL when unused (docs/rkllm-abi.md)
      }
      infer.max_new_tokens = r.max_new_tokens;
      return fn_.run(handle, &input, &infer, userdata);
    } else {
      return fn_.run(handle, &input, &infer, userdata);
    }
  }

  int Abort(rkllm::Handle handle) const override { return fn_.abort(handle); }

  bool IsRunning(rkllm::Handle handle) const override {
    int code = fn_.is_running(handle);
    return A == Abi::k12 ? code == 0 : code == 1;
  }

  int Destroy(rkllm::Handle handle) const override { return fn_.destroy(handle); }

  int LoadLora(rkllm::Handle handle, LoraAdapterParams& a) const override {
    rkllm::LoraAdapter adapter{};
    adapter.lora_adapter_path = a.path.c_str();
    adapter.lora_adapter_name = a.name.c_str();
    adapter.scale = a.scale;
    return fn_.load_lora(handle, &adapter);
  }

  int LoadPromptCache(rkllm::Handle handle, const std::string& path) const override {
    return fn_.load_prompt_cache(handle, path.c_str());
  }

  int ReleasePromptCache(rkllm::Handle handle) const override { return fn_.release_prompt_cache(handle); }

  int ClearKvCache(rkllm::Handle handle, bool keep_system_prompt, std::vector<int>* start_pos,
                   std::vector<int>* end_pos) const override {
    return fn_.clear_kv_cache(handle, keep_system_prompt ? 1 : 0, start_pos ? start_pos->data() : nullptr,
                              end_pos ? end_pos->data() : nullptr);
  }

  int GetKvCacheSize(rkllm::Handle handle, std::vector<int>& sizes) const override {
    // The runtime writes one int per batch entry (n_batch <= 255): give it room for all.
    std::vector<int> buffer(256, -1);
    int code = fn_.get_kv_cache_size(handle, buffer.data());
    size_t used = std::max<size_t>(sizes.size(), 1);
    sizes.assign(buffer.begin(), buffer.begin() + static_cast<long>(used));
    return code;
  }

  int SetChatTemplate(rkllm::Handle handle, const std::string& system_prompt, const std::string& prompt_prefix,
                      const std::string& prompt_postfix) const override {
    return fn_.set_chat_template(handle, system_prompt.c_str(), prompt_prefix.c_str(), prompt_postfix.c_str());
  }

  int SetFunctionTools(rkllm::Handle handle, const std::string& system_prompt, const std::string& tools,
                       const std::string& tool_response_str) const override {
    return fn_.set_function_tools(handle, system_prompt.c_str(), tools.c_str(), tool_response_str.c_str());
  }

  int SetCrossAttnParams(rkllm::Handle handle, CrossAttnParams& p) const override {
    rkllm::CrossAttnParam c{};
    c.encoder_k_cache = p.k_cache.data();
    c.encoder_v_cache = p.v_cache.data();
    c.encoder_mask = p.mask.data();
    c.encoder_pos = p.pos.data();
    c.num_tokens = p.num_tokens;
    return fn_.set_cross_attn_params(handle, &c);
  }

 private:
  static void FillMultimodal(Input& input, MultimodalParams& m) {
    auto& mm = input.multimodal_input;
    mm.prompt = m.prompt.data();
    if constexpr (A == Abi::k12) {
      mm.image_embed = m.image_embed.empty() ? nullptr : m.image_embed.data();
      mm.n_image_tokens = m.n_image_tokens;
      mm.n_image = m.n_image;
      mm.image_width = m.image_width;
      mm.image_height = m.image_height;
    } else {
      mm.image.image_embed = m.image_embed.empty() ? nullptr : m.image_embed.data();
      mm.image.n_image_tokens = m.n_image_tokens;
      mm.image.n_image = m.n_image;
      mm.image.image_start = m.image_start.c_str();
      mm.image.image_end = m.image_end.c_str();
      mm.image.image_content = m.image_content.c_str();
      mm.image.image_width = m.image_width;
      mm.image.image_height = m.image_height;
      mm.video.video_embed = m.video_embed.empty() ? nullptr : m.video_embed.data();
      mm.video.n_frame_tokens = m.n_frame_tokens;
      mm.video.n_frame_per_video = m.n_frame_per_video;
      mm.video.n_video = m.n_video;
      mm.video.video_start = m.video_start.c_str();
      mm.video.video_end = m.video_end.c_str();
      mm.video.video_content = m.video_content.c_str();
      mm.video.frame_width = m.frame_width;
      mm.video.frame_height = m.frame_height;
      // Without audio embeddings the block stays all zero, as 1.3.0's layout (and ABI 1.3) leaves it.
      if constexpr (A == Abi::k131) {
        if (m.audio_embed.empty()) return;
        mm.audio.audio_embed = m.audio_embed.data();
        mm.audio.n_audio_tokens = m.n_audio_tokens;
        mm.audio.n_audio = m.n_audio;
        mm.audio.audio_start = m.audio_start.c_str();
        mm.audio.audio_end = m.audio_end.c_str();
        mm.audio.audio_content = m.audio_content.c_str();
      }
    }
  }

  Functions fn_{};
  // 1.3 receives the callbacks through a pointer the runtime may keep: it lives with this object,
  // which lives as long as any model of the library. (1.2 uses only result_callback.)
  mutable rkllm::abi13::Callbacks callbacks_{};
};

template <Abi A>
std::unique_ptr<RuntimeApi> Make(void* library, rkllm::ResultCallback callback, std::vector<std::string>& missing) {
  auto api = std::make_unique<RuntimeApiImpl<A>>(callback);
  if (!api->Resolve(library, missing)) return nullptr;
  return api;
}

}  // namespace

std::unique_ptr<RuntimeApi> MakeRuntimeApi(Abi abi, void* library, rkllm::ResultCallback callback,
                                           std::vector<std::string>& missing) {
  switch (abi) {
    case Abi::k12: return Make<Abi::k12>(library, callback, missing);
    case Abi::k13: return Make<Abi::k13>(library, callback, missing);
    default: return Make<Abi::k131>(library, callback, missing);
  }
}

}  // namespace rkllm_serve
