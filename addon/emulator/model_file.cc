#include "emulator/model_file.h"

#include <cmath>
#include <fstream>
#include <sstream>

#include "emulator/json.h"
#include "emulator/text_generator.h"

namespace emu {

namespace {

constexpr const char* kFormatName = "rkllm-emulated-model";
constexpr int kFormatVersion = 1;
// A model file is a few hundred bytes; anything huge is not one.
constexpr std::streamoff kMaxFileBytes = 1 << 20;

bool read_milliseconds(const json::Value& section, const char* section_name, const char* key,
                       double* out, std::string* error) {
  const json::Value* v = section.find(key);
  if (!v || v->is_null()) return true;
  if (!v->is_number() || !std::isfinite(v->as_number()) || v->as_number() < 0) {
    *error = std::string(section_name) + "." + key + " must be a number >= 0";
    return false;
  }
  *out = v->as_number();
  return true;
}

bool read_integer(const json::Value& section, const char* section_name, const char* key,
                  double min_value, double max_value, int64_t* out, std::string* error) {
  const json::Value* v = section.find(key);
  if (!v || v->is_null()) return true;
  double d = v->is_number() ? v->as_number() : NAN;
  if (!std::isfinite(d) || d != std::floor(d) || d < min_value || d > max_value) {
    std::ostringstream message;
    message << section_name << "." << key << " must be an integer in [" << static_cast<int64_t>(min_value)
            << ", " << static_cast<int64_t>(max_value) << "]";
    *error = message.str();
    return false;
  }
  *out = static_cast<int64_t>(d);
  return true;
}

bool read_bool(const json::Value& section, const char* section_name, const char* key, bool* out,
               std::string* error) {
  const json::Value* v = section.find(key);
  if (!v || v->is_null()) return true;
  if (!v->is_bool()) {
    *error = std::string(section_name) + "." + key + " must be true or false";
    return false;
  }
  *out = v->as_bool();
  return true;
}

// A speed in MB/s: > 0, or null / absent for "no cost".
bool read_speed(const json::Value& section, const char* key, double* out, std::string* error) {
  const json::Value* v = section.find(key);
  if (!v || v->is_null()) return true;
  if (!v->is_number() || !std::isfinite(v->as_number()) || v->as_number() <= 0) {
    *error = std::string("prompt_cache.") + key + " must be a number > 0 (MB per second)";
    return false;
  }
  *out = v->as_number();
  return true;
}

std::string base_name(const std::string& path) {
  size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

bool read_section(const json::Value& root, const char* name, const json::Value** out,
                  std::string* error) {
  *out = root.find(name);
  if (*out && !(*out)->is_null() && !(*out)->is_object()) {
    *error = std::string(name) + " must be an object";
    return false;
  }
  if (*out && (*out)->is_null()) *out = nullptr;
  return true;
}

struct WaitingStyleName {
  const char* name;
  WaitingStyle style;
};
constexpr WaitingStyleName kWaitingStyles[] = {
    {"partial-then-rest", WaitingStyle::kPartialThenRest},
    {"partial-then-whole", WaitingStyle::kPartialThenWhole},
    {"empty-then-whole", WaitingStyle::kEmptyThenWhole},
};

bool read_waiting_style(const json::Value& section, WaitingStyle* out, std::string* error) {
  const json::Value* v = section.find("waiting");
  if (!v || v->is_null()) return true;
  if (v->is_string()) {
    for (const WaitingStyleName& entry : kWaitingStyles) {
      if (v->as_string() == entry.name) {
        *out = entry.style;
        return true;
      }
    }
  }
  *error = "callbacks.waiting must be \"partial-then-rest\", \"partial-then-whole\" or \"empty-then-whole\"";
  return false;
}

bool parse_spec(const json::Value& root, ModelSpec* spec, std::string* error) {
  if (!root.is_object()) {
    *error = "the model file must hold a JSON object";
    return false;
  }
  const json::Value* format = root.find("format");
  if (!format || !format->is_string() || format->as_string() != kFormatName) {
    *error = std::string("not an emulated model file: \"format\" must be \"") + kFormatName + "\"";
    return false;
  }
  const json::Value* version = root.find("version");
  if (!version || !version->is_number() || version->as_number() != kFormatVersion) {
    *error = "unsupported emulated model file version (this runtime reads version 1)";
    return false;
  }
  if (const json::Value* name = root.find("name"); name && name->is_string()) spec->name = name->as_string();
  if (const json::Value* d = root.find("description"); d && d->is_string()) spec->description = d->as_string();

  const json::Value* timing = nullptr;
  const json::Value* limits = nullptr;
  const json::Value* faults = nullptr;
  const json::Value* callbacks = nullptr;
  const json::Value* answers = nullptr;
  const json::Value* prompt_cache = nullptr;
  if (!read_section(root, "timing", &timing, error) || !read_section(root, "limits", &limits, error) ||
      !read_section(root, "faults", &faults, error) || !read_section(root, "callbacks", &callbacks, error) ||
      !read_section(root, "answers", &answers, error) || !read_section(root, "prompt_cache", &prompt_cache, error)) {
    return false;
  }
  if (prompt_cache) {
    if (!read_integer(*prompt_cache, "prompt_cache", "kv_bytes_per_token", 0, 1 << 30, &spec->kv_bytes_per_token,
                      error) ||
        !read_speed(*prompt_cache, "save_mb_per_s", &spec->save_mb_per_s, error) ||
        !read_speed(*prompt_cache, "load_mb_per_s", &spec->load_mb_per_s, error)) {
      return false;
    }
  }
  if (callbacks && !read_waiting_style(*callbacks, &spec->waiting, error)) return false;
  if (answers) {
    const json::Value* echo = answers->find("echo_prompt");
    if (echo && !echo->is_null()) {
      if (!echo->is_bool()) {
        *error = "answers.echo_prompt must be true or false";
        return false;
      }
      spec->echo_prompt = echo->as_bool();
    }
  }
  if (timing) {
    if (!read_milliseconds(*timing, "timing", "load_ms", &spec->load_ms, error) ||
        !read_milliseconds(*timing, "timing", "prefill_ms_per_token", &spec->prefill_ms_per_token, error) ||
        !read_milliseconds(*timing, "timing", "decode_ms_per_token", &spec->decode_ms_per_token, error)) {
      return false;
    }
  }
  if (limits) {
    int64_t context = spec->max_context_len, vocab = spec->vocab_size, embedding = spec->embedding_size;
    if (!read_integer(*limits, "limits", "max_context_len", 1, 1 << 24, &context, error) ||
        !read_integer(*limits, "limits", "vocab_size", 1, 1 << 24, &vocab, error) ||
        !read_integer(*limits, "limits", "embedding_size", 1, 1 << 16, &embedding, error)) {
      return false;
    }
    spec->max_context_len = static_cast<int32_t>(context);
    spec->vocab_size = static_cast<int32_t>(vocab);
    spec->embedding_size = static_cast<int32_t>(embedding);
  }
  if (faults) {
    const json::Value* init_error = faults->find("init_error");
    if (init_error && !init_error->is_null()) {
      if (!init_error->is_string()) {
        *error = "faults.init_error must be a string or null";
        return false;
      }
      spec->has_init_error = true;
      spec->init_error = init_error->as_string();
    }
    if (!read_integer(*faults, "faults", "error_after_tokens", 0, 1e15, &spec->error_after_tokens, error) ||
        !read_milliseconds(*faults, "faults", "abort_delay_ms", &spec->abort_delay_ms, error) ||
        !read_bool(*faults, "faults", "crash_in_init", &spec->crash_in_init, error) ||
        !read_integer(*faults, "faults", "crash_after_tokens", 0, 1e15, &spec->crash_after_tokens, error) ||
        !read_integer(*faults, "faults", "hang_after_tokens", 0, 1e15, &spec->hang_after_tokens, error) ||
        !read_integer(*faults, "faults", "exit_after_tokens", 0, 1e15, &spec->exit_after_tokens, error) ||
        !read_bool(*faults, "faults", "abort_never_lands", &spec->abort_never_lands, error)) {
      return false;
    }
  }
  return true;
}

}  // namespace

bool load_model_file(const std::string& path, ModelSpec* out, std::string* error) {
  std::ifstream file(path, std::ios::binary);
  if (!file) {
    *error = "cannot open model file '" + path + "'";
    return false;
  }
  file.seekg(0, std::ios::end);
  std::streamoff size = file.tellg();
  if (size < 0 || size > kMaxFileBytes) {
    *error = "model file '" + path + "' is not a readable emulated model file";
    return false;
  }
  file.seekg(0, std::ios::beg);
  std::string text(static_cast<size_t>(size), '\0');
  if (size > 0 && !file.read(&text[0], size)) {
    *error = "cannot read model file '" + path + "'";
    return false;
  }
  json::Value root = json::Value::null();
  std::string parse_error;
  if (!json::parse(text, &root, &parse_error)) {
    *error = "model file '" + path + "' is not valid JSON: " + parse_error;
    return false;
  }
  ModelSpec spec;
  std::string spec_error;
  if (!parse_spec(root, &spec, &spec_error)) {
    *error = "model file '" + path + "': " + spec_error;
    return false;
  }
  spec.identity_name = spec.name.empty() ? base_name(path) : spec.name;
  spec.fingerprint = SeedHasher().add(text.data(), text.size()).value();
  *out = std::move(spec);
  return true;
}

}  // namespace emu
