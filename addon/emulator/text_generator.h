// Decides what the emulated model answers. Answers are deterministic functions of the request so
// tests can assert on them: "count to N", "echo: ...", tool calls, tool responses, and otherwise
// seeded pseudo-text built from a fixed word list (with multi-byte words so UTF-8 handling is
// exercised). See docs/emulated-runtime.md for the exact rules.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "emulator/tokenizer.h"

namespace emu {

// 64-bit FNV-1a, used to fold request contents into seeds.
class SeedHasher {
 public:
  SeedHasher& add(const void* data, size_t length);
  SeedHasher& add(std::string_view text) {
    add(text.data(), text.size());
    // A separator keeps ("ab","c") and ("a","bc") apart.
    return add_u64(text.size());
  }
  SeedHasher& add_u64(uint64_t value) { return add(&value, sizeof(value)); }
  uint64_t value() const { return hash_; }

 private:
  uint64_t hash_ = 14695981039346656037ull;
};

struct AnswerRequest {
  // The user's own text (prompt or multimodal prompt); absent for token and embedding input.
  bool has_user_text = false;
  std::string_view user_text;
  bool is_tool_response = false;  // input role "tool"
  bool enable_thinking = false;
  // Function names from rkllm_set_function_tools (empty when no tools are set).
  const std::vector<std::string>* tool_names = nullptr;
  // Seed of the generic answer (prompt, system prompt, LoRA, sampling, ids or embeddings).
  uint64_t seed = 0;
  // ignore_eos_token: the generic answer never ends on its own.
  bool endless = false;
  // Multimodal input: what arrived of its media blocks, answered to "describe the media".
  const std::string* media_report = nullptr;
  // The model file's answers.echo_prompt: the answer is `templated_prompt`, byte for byte.
  bool echo_prompt = false;
  std::string_view templated_prompt;
};

std::unique_ptr<TextSource> make_answer_source(const AnswerRequest& request);

// Collects the function names from a tools JSON document (an array of OpenAI-style tools, or any
// document whose objects carry a string "name"; parameter schemas are not searched).
bool extract_tool_names(std::string_view tools_json, std::vector<std::string>* names, std::string* error);

// Fills out with count pseudo-random floats in [-1, 1) that depend only on seed.
void fill_deterministic_floats(uint64_t seed, float* out, size_t count);

}  // namespace emu
