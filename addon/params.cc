#include "params.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <initializer_list>
#include <limits>

#include "base64_floats.h"
#include "errors.h"

namespace rkllm_serve {

const char* AbiName(Abi abi) {
  switch (abi) {
    case Abi::k12: return "1.2";
    case Abi::k13: return "1.3";
    default: return "1.3.1";
  }
}

namespace {

// Reads named fields of one JS object, prefixing every error with the field's full path.
class FieldReader {
 public:
  FieldReader(const Napi::Value& value, std::string path) : env_(value.Env()), path_(std::move(path)) {
    if (!value.IsObject() || value.IsArray()) Fail(path_, "must be an object");
    object_ = value.As<Napi::Object>();
  }

  bool Has(const char* key) const {
    if (!object_.Has(key)) return false;
    Napi::Value value = object_.Get(key);
    return !value.IsUndefined() && !value.IsNull();
  }
  Napi::Value Get(const char* key) const { return object_.Get(key); }
  std::string PathOf(const char* key) const { return path_.empty() ? key : path_ + "." + key; }

  double Number(const char* key) const {
    Napi::Value value = object_.Get(key);
    if (!value.IsNumber()) Fail(PathOf(key), "must be a number");
    double number = value.As<Napi::Number>().DoubleValue();
    if (!std::isfinite(number)) Fail(PathOf(key), "must be a finite number");
    return number;
  }

  int64_t Integer(const char* key, int64_t min, int64_t max) const {
    double number = Number(key);
    if (std::floor(number) != number) Fail(PathOf(key), "must be an integer");
    if (number < static_cast<double>(min) || number > static_cast<double>(max)) {
      Fail(PathOf(key), "must be between " + std::to_string(min) + " and " + std::to_string(max));
    }
    return static_cast<int64_t>(number);
  }

  int32_t Int32(const char* key) const {
    return static_cast<int32_t>(
        Integer(key, std::numeric_limits<int32_t>::min(), std::numeric_limits<int32_t>::max()));
  }
  uint64_t Size(const char* key) const {
    return static_cast<uint64_t>(Integer(key, 0, int64_t(1) << 53));
  }
  float Float(const char* key) const { return static_cast<float>(Number(key)); }

  // Booleans of the C API are often ints (keep_history, save_prompt_cache): take either.
  bool Flag(const char* key) const {
    Napi::Value value = object_.Get(key);
    if (value.IsBoolean()) return value.As<Napi::Boolean>().Value();
    if (value.IsNumber()) return Integer(key, 0, 1) != 0;
    Fail(PathOf(key), "must be a boolean");
  }

  std::string String(const char* key) const { return ReadString(object_.Get(key), PathOf(key).c_str()); }

  std::vector<float> Floats(const char* key) const {
    Napi::Value value = object_.Get(key);
    std::string path = PathOf(key);
    if (value.IsTypedArray() && value.As<Napi::TypedArray>().TypedArrayType() == napi_float32_array) {
      Napi::Float32Array array = value.As<Napi::Float32Array>();
      return std::vector<float>(array.Data(), array.Data() + array.ElementLength());
    }
    if (value.IsString()) {
      std::vector<float> decoded;
      std::string reason;
      if (!DecodeBase64Floats(value.As<Napi::String>().Utf8Value(), &decoded, &reason)) Fail(path, reason);
      return decoded;
    }
    if (!value.IsArray()) {
      Fail(path, "must be an array of numbers, a Float32Array or a base64 string of little-endian float32 values");
    }
    Napi::Array array = value.As<Napi::Array>();
    std::vector<float> out(array.Length());
    for (uint32_t i = 0; i < array.Length(); ++i) {
      Napi::Value item = array.Get(i);
      if (!item.IsNumber()) Fail(path + "[" + std::to_string(i) + "]", "must be a number");
      out[i] = item.As<Napi::Number>().FloatValue();
    }
    return out;
  }

  std::vector<int32_t> Ints(const char* key) const { return ReadIntArray(object_.Get(key), PathOf(key).c_str()); }

  [[noreturn]] void Fail(const std::string& field, const std::string& reason) const {
    ThrowInvalidArgument(env_, field, reason);
  }

 private:
  Napi::Env env_;
  std::string path_;
  Napi::Object object_;
};

}  // namespace

std::string ReadString(const Napi::Value& value, const char* field) {
  if (!value.IsString()) ThrowInvalidArgument(value.Env(), field, "must be a string");
  std::string text = value.As<Napi::String>().Utf8Value();
  if (text.find('\0') != std::string::npos) ThrowInvalidArgument(value.Env(), field, "must not contain NUL characters");
  return text;
}

std::vector<int32_t> ReadIntArray(const Napi::Value& value, const char* field) {
  if (value.IsTypedArray() && value.As<Napi::TypedArray>().TypedArrayType() == napi_int32_array) {
    Napi::Int32Array array = value.As<Napi::Int32Array>();
    return std::vector<int32_t>(array.Data(), array.Data() + array.ElementLength());
  }
  if (!value.IsArray()) ThrowInvalidArgument(value.Env(), field, "must be an array of integers");
  Napi::Array array = value.As<Napi::Array>();
  std::vector<int32_t> out(array.Length());
  for (uint32_t i = 0; i < array.Length(); ++i) {
    Napi::Value item = array.Get(i);
    double number = item.IsNumber() ? item.As<Napi::Number>().DoubleValue() : NAN;
    if (!(std::floor(number) == number && number >= INT32_MIN && number <= INT32_MAX)) {
      ThrowInvalidArgument(value.Env(), std::string(field) + "[" + std::to_string(i) + "]", "must be a 32-bit integer");
    }
    out[i] = static_cast<int32_t>(number);
  }
  return out;
}

ModelParams ReadModelParams(const Napi::Value& value) {
  FieldReader param(value, "param");
  ModelParams p;
  p.model_path = param.String("model_path");
  if (p.model_path.empty()) param.Fail(param.PathOf("model_path"), "must not be empty");
  p.max_context_len = param.Int32("max_context_len");
  p.max_new_tokens = param.Int32("max_new_tokens");
  p.top_k = param.Int32("top_k");
  p.n_keep = param.Int32("n_keep");
  p.top_p = param.Float("top_p");
  p.temperature = param.Float("temperature");
  p.repeat_penalty = param.Float("repeat_penalty");
  p.frequency_penalty = param.Float("frequency_penalty");
  p.presence_penalty = param.Float("presence_penalty");
  p.mirostat = param.Int32("mirostat");
  p.mirostat_tau = param.Float("mirostat_tau");
  p.mirostat_eta = param.Float("mirostat_eta");
  p.skip_special_token = param.Flag("skip_special_token");
  p.is_async = param.Flag("is_async");
  if (param.Has("ignore_eos_token")) p.ignore_eos_token = param.Flag("ignore_eos_token");
  if (param.Has("img_start")) p.img_start = param.String("img_start");
  if (param.Has("img_end")) p.img_end = param.String("img_end");
  if (param.Has("img_content")) p.img_content = param.String("img_content");
  FieldReader extend(param.Get("extend_param"), "param.extend_param");
  p.base_domain_id = extend.Int32("base_domain_id");
  p.embed_flash = static_cast<int8_t>(extend.Integer("embed_flash", 0, 1));
  p.enabled_cpus_num = static_cast<int8_t>(extend.Integer("enabled_cpus_num", 0, 8));
  p.enabled_cpus_mask = static_cast<uint32_t>(extend.Integer("enabled_cpus_mask", 0, 0xFFFFFFFFll));
  p.n_batch = static_cast<uint8_t>(extend.Integer("n_batch", 0, 255));
  p.use_cross_attn = static_cast<int8_t>(extend.Integer("use_cross_attn", 0, 1));
  return p;
}

namespace {

// n × m without wrapping (saturates): the counts come straight from the caller.
uint64_t SaturatingTimes(uint64_t a, uint64_t b) { return a != 0 && b > UINT64_MAX / a ? UINT64_MAX : a * b; }

// The runtime reads tokens × the model's embedding size floats from an embedding array: one of
// another length makes it read past the end or leave floats unread. `tokens_name` says how the
// caller counted the tokens ("n_image x n_image_tokens").
void CheckEmbeddingSize(const FieldReader& reader, const char* embed_name, size_t length, uint64_t tokens,
                        const char* tokens_name, const InputLimits& limits) {
  if (limits.embedding_size <= 0) return;  // the model did not say: only the counts could be checked
  const uint64_t expected = SaturatingTimes(tokens, static_cast<uint64_t>(limits.embedding_size));
  if (length == expected) return;
  reader.Fail(reader.PathOf(embed_name), "holds " + std::to_string(length) + " floats, but " + tokens_name +
                                             " x the model's embedding size (" +
                                             std::to_string(limits.embedding_size) + ") is " +
                                             std::to_string(expected));
}

void ReadMultimodal(const FieldReader& mm, MultimodalParams& out, const InputLimits& limits) {
  out.prompt = mm.String("prompt");
  if (mm.Has("image_embed")) out.image_embed = mm.Floats("image_embed");
  if (mm.Has("n_image_tokens")) out.n_image_tokens = mm.Size("n_image_tokens");
  if (mm.Has("n_image")) out.n_image = mm.Size("n_image");
  if (mm.Has("image_width")) out.image_width = mm.Size("image_width");
  if (mm.Has("image_height")) out.image_height = mm.Size("image_height");
  if (mm.Has("image_start")) out.image_start = mm.String("image_start");
  if (mm.Has("image_end")) out.image_end = mm.String("image_end");
  if (mm.Has("image_content")) out.image_content = mm.String("image_content");
  if (mm.Has("video_embed")) out.video_embed = mm.Floats("video_embed");
  if (mm.Has("n_frame_tokens")) out.n_frame_tokens = mm.Size("n_frame_tokens");
  if (mm.Has("n_frame_per_video")) out.n_frame_per_video = mm.Size("n_frame_per_video");
  if (mm.Has("n_video")) out.n_video = mm.Size("n_video");
  if (mm.Has("frame_width")) out.frame_width = mm.Size("frame_width");
  if (mm.Has("frame_height")) out.frame_height = mm.Size("frame_height");
  if (mm.Has("video_start")) out.video_start = mm.String("video_start");
  if (mm.Has("video_end")) out.video_end = mm.String("video_end");
  if (mm.Has("video_content")) out.video_content = mm.String("video_content");
  if (mm.Has("audio_embed")) out.audio_embed = mm.Floats("audio_embed");
  if (mm.Has("n_audio_tokens")) out.n_audio_tokens = mm.Size("n_audio_tokens");
  if (mm.Has("n_audio")) out.n_audio = mm.Size("n_audio");
  if (mm.Has("audio_start")) out.audio_start = mm.String("audio_start");
  if (mm.Has("audio_end")) out.audio_end = mm.String("audio_end");
  if (mm.Has("audio_content")) out.audio_content = mm.String("audio_content");
  // The runtime reads n_image x n_image_tokens x embedding floats (and likewise for the video and
  // audio blocks): refuse counts that cannot match a non-empty array rather than let it read past
  // the end, then the array's length against the model's embedding size.
  struct Count {
    const char* name;
    uint64_t value;
  };
  auto check_block = [&mm, &limits](const std::vector<float>& embed, const char* embed_name,
                                    std::initializer_list<Count> counts, const char* product_name) {
    if (embed.empty()) return;
    uint64_t product = 1;
    for (const Count& count : counts) {
      if (count.value == 0) mm.Fail(mm.PathOf(count.name), std::string("must be positive when ") + embed_name + " is given");
      product = SaturatingTimes(product, count.value);
    }
    if (product > embed.size() || embed.size() % product != 0) {
      mm.Fail(mm.PathOf(embed_name), std::string("length must be a multiple of ") + product_name);
    }
    CheckEmbeddingSize(mm, embed_name, embed.size(), product, product_name, limits);
  };
  check_block(out.image_embed, "image_embed", {{"n_image", out.n_image}, {"n_image_tokens", out.n_image_tokens}},
              "n_image x n_image_tokens");
  check_block(out.video_embed, "video_embed",
              {{"n_video", out.n_video}, {"n_frame_per_video", out.n_frame_per_video}, {"n_frame_tokens", out.n_frame_tokens}},
              "n_video x n_frame_per_video x n_frame_tokens");
  // Only the 1.3.1 layout has an audio block: elsewhere the audio would be silently dropped while
  // the prompt still holds its placeholder.
  if (!out.audio_embed.empty() && limits.abi != Abi::k131) {
    mm.Fail(mm.PathOf("audio_embed"),
            std::string("needs runtime 1.3.1 (ABI 1.3.1 added the audio block); this runtime speaks ABI ") +
                AbiName(limits.abi) +
                (limits.abi == Abi::k13 ? " (release 1.3.0, or a 1.3.x whose release was not told apart: open it "
                                          "with ABI '1.3.1' if it is 1.3.1)"
                                        : ""));
  }
  check_block(out.audio_embed, "audio_embed", {{"n_audio", out.n_audio}, {"n_audio_tokens", out.n_audio_tokens}},
              "n_audio x n_audio_tokens");
}

}  // namespace

RunRequest ReadRunRequest(const Napi::Value& input_value, const Napi::Value& infer_value, const InputLimits& limits) {
  RunRequest r;
  FieldReader input(input_value, "rkllm_input");
  r.input_type = static_cast<int32_t>(input.Integer("input_type", 0, 3));
  if (input.Has("role")) r.role = input.String("role");
  if (input.Has("enable_thinking")) r.enable_thinking = input.Flag("enable_thinking");
  switch (r.input_type) {
    case 0:
      r.prompt = input.String("prompt_input");
      break;
    case 1:
      r.token_ids = input.Ints("token_input");
      if (r.token_ids.empty()) input.Fail(input.PathOf("token_input"), "must not be empty");
      break;
    case 2: {
      FieldReader embed(input.Get("embed_input"), "rkllm_input.embed_input");
      r.embed = embed.Floats("embed");
      r.embed_n_tokens = embed.Size("n_tokens");
      if (r.embed_n_tokens == 0) embed.Fail(embed.PathOf("n_tokens"), "must be positive");
      if (r.embed.empty() || r.embed.size() % r.embed_n_tokens != 0) {
        embed.Fail(embed.PathOf("embed"), "length must be a positive multiple of n_tokens");
      }
      CheckEmbeddingSize(embed, "embed", r.embed.size(), r.embed_n_tokens, "n_tokens", limits);
      break;
    }
    default:
      ReadMultimodal(FieldReader(input.Get("multimodal_input"), "rkllm_input.multimodal_input"), r.multimodal, limits);
      break;
  }

  FieldReader infer(infer_value, "rkllm_infer_params");
  r.mode = static_cast<int32_t>(infer.Integer("mode", 0, 2));
  r.keep_history = infer.Has("keep_history") ? (infer.Flag("keep_history") ? 1 : 0) : 0;
  if (infer.Has("max_new_tokens")) r.max_new_tokens = infer.Int32("max_new_tokens");
  if (infer.Has("lora_params")) {
    FieldReader lora(infer.Get("lora_params"), "rkllm_infer_params.lora_params");
    r.has_lora = true;
    r.lora_adapter_name = lora.String("lora_adapter_name");
  }
  if (infer.Has("prompt_cache_params")) {
    FieldReader cache(infer.Get("prompt_cache_params"), "rkllm_infer_params.prompt_cache_params");
    r.has_prompt_cache = true;
    r.save_prompt_cache = cache.Flag("save_prompt_cache") ? 1 : 0;
    if (cache.Has("prompt_cache_path")) {
      r.has_prompt_cache_path = true;
      r.prompt_cache_path = cache.String("prompt_cache_path");
    }
  }
  if (infer.Has("sampling_params")) {
    FieldReader s(infer.Get("sampling_params"), "rkllm_infer_params.sampling_params");
    r.has_sampling = true;
    r.sampling.top_k = s.Int32("top_k");
    r.sampling.top_p = s.Float("top_p");
    r.sampling.temperature = s.Float("temperature");
    r.sampling.repeat_penalty = s.Float("repeat_penalty");
    r.sampling.frequency_penalty = s.Float("frequency_penalty");
    r.sampling.presence_penalty = s.Float("presence_penalty");
    r.sampling.mirostat = s.Int32("mirostat");
    r.sampling.mirostat_tau = s.Float("mirostat_tau");
    r.sampling.mirostat_eta = s.Float("mirostat_eta");
  }
  return r;
}

LoraAdapterParams ReadLoraAdapter(const Napi::Value& value) {
  FieldReader adapter(value, "lora_adapter");
  LoraAdapterParams out;
  out.path = adapter.String("lora_adapter_path");
  out.name = adapter.String("lora_adapter_name");
  out.scale = adapter.Has("scale") ? adapter.Float("scale") : 1.0f;
  return out;
}

CrossAttnParams ReadCrossAttnParams(const Napi::Value& value) {
  FieldReader params(value, "cross_attn_params");
  CrossAttnParams out;
  out.k_cache = params.Floats("encoder_k_cache");
  out.v_cache = params.Floats("encoder_v_cache");
  out.mask = params.Floats("encoder_mask");
  out.pos = params.Ints("encoder_pos");
  out.num_tokens = static_cast<int32_t>(params.Integer("num_tokens", 0, INT32_MAX));
  if (out.pos.size() < static_cast<size_t>(out.num_tokens) || out.mask.size() < static_cast<size_t>(out.num_tokens)) {
    params.Fail(params.PathOf("num_tokens"), "exceeds the length of encoder_pos or encoder_mask");
  }
  return out;
}

// A float32 widened to double prints as 0.8999999761581421; JS callers expect 0.9.
double ShortestFloat(float value) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.7g", static_cast<double>(value));
  return std::strtod(text, nullptr);
}

Napi::Object ModelParamsToJs(Napi::Env env, const ModelParams& p, Abi abi) {
  Napi::Object out = Napi::Object::New(env);
  out.Set("model_path", p.model_path);
  out.Set("max_context_len", p.max_context_len);
  out.Set("max_new_tokens", p.max_new_tokens);
  out.Set("top_k", p.top_k);
  out.Set("n_keep", p.n_keep);
  out.Set("top_p", ShortestFloat(p.top_p));
  out.Set("temperature", ShortestFloat(p.temperature));
  out.Set("repeat_penalty", ShortestFloat(p.repeat_penalty));
  out.Set("frequency_penalty", ShortestFloat(p.frequency_penalty));
  out.Set("presence_penalty", ShortestFloat(p.presence_penalty));
  out.Set("mirostat", p.mirostat);
  out.Set("mirostat_tau", ShortestFloat(p.mirostat_tau));
  out.Set("mirostat_eta", ShortestFloat(p.mirostat_eta));
  out.Set("skip_special_token", p.skip_special_token);
  if (abi != Abi::k12) out.Set("ignore_eos_token", p.ignore_eos_token);
  out.Set("is_async", p.is_async);
  if (abi == Abi::k12) {
    out.Set("img_start", p.img_start);
    out.Set("img_end", p.img_end);
    out.Set("img_content", p.img_content);
  }
  Napi::Object extend = Napi::Object::New(env);
  extend.Set("base_domain_id", p.base_domain_id);
  extend.Set("embed_flash", p.embed_flash);
  extend.Set("enabled_cpus_num", p.enabled_cpus_num);
  extend.Set("enabled_cpus_mask", p.enabled_cpus_mask);
  extend.Set("n_batch", p.n_batch);
  extend.Set("use_cross_attn", p.use_cross_attn);
  out.Set("extend_param", extend);
  return out;
}

}  // namespace rkllm_serve
