// One emulated model handle: its inference thread, KV cache, chat template, tools, LoRA adapters
// and prompt cache. Every run executes on the handle's own thread, as with the real runtime, so
// the result callback never runs on the thread that called rkllm_run.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "emulator/clock_util.h"
#include "emulator/prompt_cache_file.h"
#include "emulator/run_request.h"

namespace emu {

class Engine {
 public:
  // Starts the handle's thread; throws std::system_error when the process cannot start one.
  explicit Engine(EngineSettings settings);
  ~Engine();                                 // shutdown() if not done yet
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  const EngineSettings& settings() const { return settings_; }
  bool on_worker_thread() const { return std::this_thread::get_id() == worker_id_; }

  // Hands a run to the handle's thread. wait: block until it has ended and return its result
  // (0, or -1 after an ERROR callback). Returns -1 at once when a run is already going.
  int run(RunRequest request, bool wait);
  // Stops the current run and waits for it to end (0 also when nothing runs). -1 only when the
  // run did not end within abort_delay_ms + 1 s (a result callback that does not return).
  int abort();
  bool is_running();
  // Stops any run promptly (ignoring the model's abort delay) and joins the thread.
  void shutdown();

  int clear_kv_cache(bool keep_system_prompt, const int* start_pos, const int* end_pos);
  void get_kv_cache_size(int* sizes);
  void set_chat_template(std::string system_prompt, std::string prefix, std::string postfix);
  bool set_function_tools(std::string system_prompt, std::string tools_json, std::string tool_response,
                          std::string* error);
  void add_lora(std::string name, std::string path, float scale);
  // Reads and checks the file, then blocks the caller for the load's cost (the model file's
  // prompt_cache speeds) before the cache takes effect; destroying the handle cuts the wait short.
  bool load_prompt_cache(const std::string& path, std::string* error);
  void release_prompt_cache();
  void set_cross_attn_tokens(int32_t num_tokens);

 private:
  class Run;
  friend class Run;

  void worker_main();
  // Waits until deadline; false when an abort landed (or destroy began) first.
  bool sleep_until(Clock::time_point deadline);
  bool abort_landed();
  void request_abort(Clock::time_point land_at);
  std::string system_text_locked() const;
  PromptCacheOwner cache_owner() const;

  const EngineSettings settings_;

  std::mutex mutex_;
  std::condition_variable work_cv_;   // worker: a job arrived or quit
  std::condition_variable done_cv_;   // callers: a job ended
  std::condition_variable sleep_cv_;  // emulated compute delays: abort or quit
  struct Job {
    RunRequest request;
    uint64_t seq;
    bool caller_waits;
  };
  std::optional<Job> job_;
  bool busy_ = false;
  bool quit_ = false;
  bool shut_down_ = false;
  uint64_t submitted_seq_ = 0;
  uint64_t done_seq_ = 0;
  std::unordered_map<uint64_t, int> results_;  // by job seq, for rkllm_run calls still waiting

  // Abort state read on the hot path without the mutex.
  std::atomic<bool> abort_requested_{false};
  std::atomic<int64_t> abort_land_ns_{0};
  // Tokens the current run has added to the KV cache so far (for get_kv_cache_size mid-run).
  std::atomic<int64_t> live_tokens_{0};

  // Guarded by mutex_.
  std::vector<int> kv_cache_;
  std::string system_prompt_, prompt_prefix_, prompt_postfix_;
  bool tools_set_ = false;
  std::string tools_system_prompt_, tools_json_, tool_response_str_;
  std::vector<std::string> tool_names_;
  struct Lora {
    std::string path;
    float scale;
  };
  std::map<std::string, Lora> loras_;
  std::shared_ptr<const std::vector<int32_t>> prompt_cache_;
  int32_t cross_attn_tokens_ = 0;

  std::thread worker_;
  std::thread::id worker_id_;
};

}  // namespace emu
