#include "emulator/engine.h"

#include <algorithm>

#include "emulator/engine_run.h"
#include "emulator/faults.h"
#include "emulator/log.h"
#include "emulator/prompt_cache_file.h"
#include "emulator/text_generator.h"
#include "emulator/tokenizer.h"

namespace emu {

namespace {

// How long past its abort delay a run may take to stop before rkllm_abort gives up waiting.
constexpr auto kAbortGrace = std::chrono::seconds(1);

}  // namespace

Engine::Engine(EngineSettings settings) : settings_(std::move(settings)) {
  kv_cache_.assign(static_cast<size_t>(settings_.n_batch), 0);
  worker_ = std::thread([this] { worker_main(); });
  worker_id_ = worker_.get_id();
}

Engine::~Engine() { shutdown(); }

void Engine::worker_main() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (true) {
    work_cv_.wait(lock, [this] { return quit_ || job_.has_value(); });
    if (!job_) return;
    Job job = std::move(*job_);
    job_.reset();
    lock.unlock();

    Run run(*this, job.request);
    Run::End end = run.execute();

    lock.lock();
    // What the run leaves in the KV cache: keep_history keeps prompt and answer; otherwise the
    // cache empties, except after a pause, which keeps it so the caller can trim it.
    int64_t added = run.tokens_added();
    bool keep = job.request.keep_history || end == Run::End::kPaused;
    for (int& size : kv_cache_) {
      if (end == Run::End::kFailed) {
        if (!job.request.keep_history) size = 0;
      } else if (keep) {
        size = static_cast<int>(std::min<int64_t>(size + added, settings_.max_context_len));
      } else {
        size = 0;
      }
    }
    live_tokens_.store(0, std::memory_order_relaxed);
    abort_requested_.store(false, std::memory_order_relaxed);
    busy_ = false;
    done_seq_ = job.seq;
    if (job.caller_waits) results_[job.seq] = end == Run::End::kFailed ? -1 : 0;
    done_cv_.notify_all();
  }
}

int Engine::run(RunRequest request, bool wait) {
  std::unique_lock<std::mutex> lock(mutex_);
  if (quit_) {
    log_line("rkllm_run: the handle is being destroyed");
    return -1;
  }
  if (busy_) {
    log_line("rkllm_run: a run is already going on this handle (one run at a time)");
    return -1;
  }
  if (!request.userdata) request.userdata = settings_.default_userdata;
  busy_ = true;
  uint64_t seq = ++submitted_seq_;
  job_ = Job{std::move(request), seq, wait};
  work_cv_.notify_one();
  if (!wait) return 0;
  done_cv_.wait(lock, [&] { return done_seq_ >= seq; });
  int result = results_[seq];
  results_.erase(seq);
  return result;
}

bool Engine::abort_landed() {
  if (!abort_requested_.load(std::memory_order_acquire)) return false;
  return to_ns(Clock::now()) >= abort_land_ns_.load(std::memory_order_relaxed);
}

void Engine::request_abort(Clock::time_point land_at) {
  // A later or repeated abort never postpones one already requested.
  int64_t land_ns = to_ns(land_at);
  if (abort_requested_.load(std::memory_order_relaxed)) {
    land_ns = std::min(land_ns, abort_land_ns_.load(std::memory_order_relaxed));
  }
  abort_land_ns_.store(land_ns, std::memory_order_relaxed);
  abort_requested_.store(true, std::memory_order_release);
  sleep_cv_.notify_all();
}

bool Engine::sleep_until(Clock::time_point deadline) {
  std::unique_lock<std::mutex> lock(mutex_);
  while (true) {
    Clock::time_point now = Clock::now();
    if (abort_landed()) return false;
    if (now >= deadline) return true;
    Clock::time_point wake = deadline;
    if (abort_requested_.load(std::memory_order_acquire)) {
      wake = std::min(wake, from_ns(abort_land_ns_.load(std::memory_order_relaxed)));
    }
    sleep_cv_.wait_until(lock, wake);
  }
}

int Engine::abort() {
  const Clock::duration delay = from_ms(settings_.model.abort_delay_ms);
  std::unique_lock<std::mutex> lock(mutex_);
  if (!busy_) return 0;
  if (settings_.model.abort_never_lands) {
    lock.unlock();
    runtime_log('E', "abort failed: the NPU did not answer (injected)");
    hang_forever();
  }
  request_abort(Clock::now() + delay);
  // Called from a result callback: the run stops once the callback returns; waiting here would
  // wait for ourselves.
  if (on_worker_thread()) return 0;
  uint64_t seq = submitted_seq_;
  bool stopped = done_cv_.wait_until(lock, Clock::now() + delay + kAbortGrace, [&] { return done_seq_ >= seq; });
  if (!stopped) {
    log_line("rkllm_abort: the run did not stop within %.0f ms (is a result callback blocked?)",
             settings_.model.abort_delay_ms + 1000.0);
    return -1;
  }
  return 0;
}

bool Engine::is_running() {
  std::lock_guard<std::mutex> lock(mutex_);
  return busy_;
}

void Engine::shutdown() {
  {
    std::unique_lock<std::mutex> lock(mutex_);
    if (shut_down_) return;
    shut_down_ = true;
    quit_ = true;
    if (busy_) request_abort(Clock::now());
    work_cv_.notify_all();
    sleep_cv_.notify_all();  // a prompt cache load waiting out its cost
  }
  if (worker_.joinable()) {
    // Destroying from inside a callback is refused by rkllm_destroy; this guards the destructor.
    if (on_worker_thread()) worker_.detach();
    else worker_.join();
  }
}

std::string Engine::system_text_locked() const {
  if (!tools_set_) return system_prompt_;
  // With function tools the runtime builds the system turn from the tools' system prompt (or
  // the chat template's) followed by the tool declarations.
  return (tools_system_prompt_.empty() ? system_prompt_ : tools_system_prompt_) + tools_json_;
}

int Engine::clear_kv_cache(bool keep_system_prompt, const int* start_pos, const int* end_pos) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (busy_) {
    log_line("rkllm_clear_kv_cache: a run is going on this handle");
    return -1;
  }
  if (!start_pos && !end_pos) {
    int keep = 0;
    if (keep_system_prompt) {
      std::vector<int32_t> ids;
      tokenize(system_text_locked(), settings_.model.vocab_size, &ids);
      keep = static_cast<int>(ids.size());
    }
    for (int& size : kv_cache_) size = std::min(size, keep);
    return 0;
  }
  if (!start_pos || !end_pos) {
    log_line("rkllm_clear_kv_cache: start_pos and end_pos must both be NULL or both be arrays");
    return -1;
  }
  for (size_t i = 0; i < kv_cache_.size(); ++i) {
    if (start_pos[i] < 0 || start_pos[i] > end_pos[i] || end_pos[i] > kv_cache_[i]) {
      log_line("rkllm_clear_kv_cache: range [%d, %d) of batch entry %zu is outside the cache of %d tokens",
               start_pos[i], end_pos[i], i, kv_cache_[i]);
      return -1;
    }
  }
  for (size_t i = 0; i < kv_cache_.size(); ++i) kv_cache_[i] -= end_pos[i] - start_pos[i];
  return 0;
}

void Engine::get_kv_cache_size(int* sizes) {
  std::lock_guard<std::mutex> lock(mutex_);
  int64_t live = live_tokens_.load(std::memory_order_relaxed);
  for (size_t i = 0; i < kv_cache_.size(); ++i) {
    sizes[i] = static_cast<int>(std::min<int64_t>(kv_cache_[i] + live, settings_.max_context_len));
  }
}

void Engine::set_chat_template(std::string system_prompt, std::string prefix, std::string postfix) {
  std::lock_guard<std::mutex> lock(mutex_);
  system_prompt_ = std::move(system_prompt);
  prompt_prefix_ = std::move(prefix);
  prompt_postfix_ = std::move(postfix);
}

bool Engine::set_function_tools(std::string system_prompt, std::string tools_json, std::string tool_response,
                                std::string* error) {
  std::vector<std::string> names;
  if (!extract_tool_names(tools_json, &names, error)) return false;
  std::lock_guard<std::mutex> lock(mutex_);
  tools_set_ = true;
  tools_system_prompt_ = std::move(system_prompt);
  tools_json_ = std::move(tools_json);
  tool_response_str_ = std::move(tool_response);
  tool_names_ = std::move(names);
  return true;
}

void Engine::add_lora(std::string name, std::string path, float scale) {
  std::lock_guard<std::mutex> lock(mutex_);
  loras_[std::move(name)] = Lora{std::move(path), scale};
}

PromptCacheOwner Engine::cache_owner() const {
  const ModelSpec& model = settings_.model;
  return PromptCacheOwner{model.identity_name, model.fingerprint, model.kv_bytes_per_token, model.vocab_size};
}

bool Engine::load_prompt_cache(const std::string& path, std::string* error) {
  auto ids = std::make_shared<std::vector<int32_t>>();
  if (!read_prompt_cache(path, cache_owner(), ids.get(), error)) return false;
  // The KV state goes back into memory on the caller's thread: rkllm_load_prompt_cache blocks.
  const double cost_ms = prompt_cache_transfer_ms(ids->size(), settings_.model.kv_bytes_per_token,
                                                  settings_.model.load_mb_per_s);
  std::unique_lock<std::mutex> lock(mutex_);
  const Clock::time_point done_at = Clock::now() + from_ms(cost_ms);
  if (sleep_cv_.wait_until(lock, done_at, [this] { return quit_; })) {
    *error = "the handle was destroyed while the prompt cache loaded";
    return false;
  }
  prompt_cache_ = std::move(ids);
  return true;
}

void Engine::release_prompt_cache() {
  std::lock_guard<std::mutex> lock(mutex_);
  prompt_cache_.reset();
}

void Engine::set_cross_attn_tokens(int32_t num_tokens) {
  std::lock_guard<std::mutex> lock(mutex_);
  cross_attn_tokens_ = num_tokens;
}

}  // namespace emu
