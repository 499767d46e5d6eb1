// One run on a handle's thread: builds the prompt, waits out prefill and decode, delivers the
// callbacks and reports what it added to the KV cache. Private to the engine.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "emulator/clock_util.h"
#include "emulator/engine.h"

namespace emu {

class Engine::Run {
 public:
  enum class End { kFinished, kAborted, kPaused, kFailed };

  Run(Engine& engine, const RunRequest& request) : engine_(engine), settings_(engine.settings_), request_(request) {
    userdata_ = request.userdata;
  }

  End execute();
  int64_t tokens_added() const { return (prefill_done_ ? prompt_tokens_ : 0) + generated_; }

 private:
  struct Snapshot {
    int64_t kv_used = 0;
    std::string system_text;
    std::string prefix, postfix;
    std::vector<std::string> tool_names;
    bool tools_set = false;
    bool lora_found = false;
    float lora_scale = 0;
    std::shared_ptr<const std::vector<int32_t>> prompt_cache;
  };

  void take_snapshot();
  bool build_prompt(std::string* error);
  uint64_t answer_seed() const;
  std::string_view last_turn() const;
  End prefill();
  End save_prompt_cache();
  End emit_hidden_layer();
  End emit_logits();
  End generate();
  End fail(const std::string& message);
  // The model file's crash, exit and hang faults, checked before each generated token.
  void inject_process_faults();
  void fill_perf(rkllm::Perf* perf);
  int deliver(rkllm::Result* result, rkllm::CallState state) {
    return settings_.callback(result, userdata_, state);
  }
  bool abort_landed() {
    return engine_.abort_requested_.load(std::memory_order_relaxed) && engine_.abort_landed();
  }

  Engine& engine_;
  const EngineSettings& settings_;
  const RunRequest& request_;
  void* userdata_;
  Snapshot snapshot_;
  std::vector<int32_t> prompt_ids_;
  // The prompt's text as templated (prompt and multimodal input), for the echo_prompt answer.
  std::string templated_prompt_;
  int64_t prompt_tokens_ = 0;
  int64_t generated_ = 0;
  bool prefill_done_ = false;
  Clock::time_point started_at_ = Clock::now();
  Clock::time_point prefilled_at_;
};

}  // namespace emu
