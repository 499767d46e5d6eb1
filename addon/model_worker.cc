#include "model_worker.h"

#include <sys/stat.h>
#include <time.h>

#include <chrono>
#include <cstdio>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <utility>

namespace rkllm_serve {

double MonotonicMicros() {
  timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<double>(now.tv_sec) * 1e6 + static_cast<double>(now.tv_nsec) / 1e3;
}

namespace {

// Runs in flight, by id. The runtime's callback gets the run id as its userdata and looks the
// worker up here, so a callback that arrives after its run ended (or for an id never issued)
// finds nothing and is dropped instead of touching freed memory or leaking into the next run.
// Leaked on purpose: it must outlive every runtime thread, including at process exit.
struct RunRegistry {
  std::mutex mutex;
  std::unordered_map<uint64_t, ModelWorker*> runs;
};
RunRegistry& Registry() {
  static RunRegistry* registry = new RunRegistry();
  return *registry;
}

int DispatchResult(rkllm::Result* result, void* userdata, rkllm::CallState state) {
  const uint64_t run_id = reinterpret_cast<uintptr_t>(userdata);
  RunRegistry& registry = Registry();
  // Held while the worker handles the result, so the run cannot be unregistered (and its worker
  // freed) under it.
  std::lock_guard<std::mutex> lock(registry.mutex);
  auto found = registry.runs.find(run_id);
  if (found == registry.runs.end()) return rkllm::kContinue;
  return found->second->OnResult(run_id, result, state);
}

// How long a run waits for abort calls still in flight (the real runtime's can take over a
// second to land) before it starts anyway.
constexpr int kAbortLandingTimeoutMs = 10000;

bool IsReadableFile(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

// What a call is answered with when the process cannot start one more thread (RLIMIT_NPROC,
// cgroup pids.max, no memory for a stack): the request fails, the server goes on.
NativeError NoThreadError(const char* fn, const std::system_error& error) {
  return NativeError("RESOURCE_EXHAUSTED", std::string(fn) + ": no thread could be started for it (" + error.what() +
                                               "); the process is at its thread limit (ulimit -u); try again later.");
}

}  // namespace

rkllm::ResultCallback ModelWorker::ResultCallback() { return &DispatchResult; }

ModelWorker::ModelWorker(std::shared_ptr<RuntimeLibrary> library, ModelParams params,
                         std::shared_ptr<EventSink> sink)
    : library_(std::move(library)), params_(std::move(params)), sink_(std::move(sink)) {}

ModelWorker::~ModelWorker() = default;

void ModelWorker::Start(uint64_t init_call_id) {
  // Detached: the thread keeps this object alive through shared_from_this and says when it is
  // done (thread_exited_), so nobody ever has to join it from the JS thread.
  try {
    std::thread([self = shared_from_this(), init_call_id] { self->ThreadMain(init_call_id); }).detach();
  } catch (const std::system_error& error) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      thread_exited_ = true;
    }
    sink_->Post(CallDoneEvent{init_call_id, -1, NoThreadError("rkllm_init", error)});
    // The share of the sink that the thread would have released as its last act.
    sink_->ReleaseThread();
  }
}

void ModelWorker::ThreadMain(uint64_t init_call_id) {
  CallDoneEvent init_done{init_call_id, 0, {}};
  if (!IsReadableFile(params_.model_path)) {
    init_done.return_code = -1;
    init_done.error = {"MODEL_INIT_FAILED", "rkllm_init: no model file at " + params_.model_path + "."};
  } else {
    rkllm::Handle handle = nullptr;
    int code = library_->api().Init(&handle, params_);
    if (code != 0 || handle == nullptr) {
      init_done.return_code = code != 0 ? code : -1;
      init_done.error = CallError("MODEL_INIT_FAILED",
                                  "rkllm_init failed for " + params_.model_path + " (returned " + std::to_string(code) +
                                      "); the runtime's log on stderr says why.",
                                  "rkllm_init", code);
    } else {
      {
        std::unique_lock<std::shared_mutex> lock(handle_mutex_);
        handle_ = handle;
        handle_live_ = true;
      }
      embedding_size_ = ProbeEmbeddingSize();
    }
  }
  const bool initialised = init_done.error.ok();
  sink_->Post(std::move(init_done));

  while (initialised) {
    Job job;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [this] { return !queue_.empty(); });
      job = std::move(queue_.front());
      queue_.pop_front();
      // Marked running under the lock, so that Cancel sees the run either queued or running.
      if (job.kind == Job::kRun) running_run_id_ = job.id;
    }
    if (job.kind == Job::kRun) {
      WaitForAbortsToLand();
      ExecuteRun(job);
    } else if (job.kind == Job::kCall) {
      int code = job.call(library_->api(), handle_);
      sink_->Post(CallDoneEvent{job.id, code, {}});
    } else {
      ExecuteDestroy(job.id);
      break;
    }
  }

  {
    std::lock_guard<std::mutex> lock(mutex_);
    thread_exited_ = true;
  }
  exited_.notify_all();
  sink_->ReleaseThread();
}

// The runtime has no call that tells a model's embedding size, which every embedding array a run
// passes must be a multiple of (or the runtime reads past its end). A GET_LAST_HIDDEN_LAYER run
// reports it (RKLLMResult.last_hidden_layer.embd_size, docs/rkllm-abi.md), so one such run of a
// single token is made right after init: on a fresh handle with keep_history 0 it leaves the KV
// cache empty, and it costs one token's prefill. Its callbacks never reach JavaScript. 0 when the
// run fails (the arrays' lengths are then checked against their counts only).
int32_t ModelWorker::ProbeEmbeddingSize() {
  const uint64_t probe_id = NextNativeId();
  RunRequest probe;
  probe.input_type = rkllm::kInputToken;
  probe.token_ids = {0};
  probe.mode = rkllm::kModeLastHiddenLayer;
  probe.keep_history = 0;
  probed_embedding_size_ = 0;
  probe_run_id_ = probe_id;
  {
    std::lock_guard<std::mutex> lock(Registry().mutex);
    Registry().runs[probe_id] = this;
  }
  int code = library_->api().Run(handle_, probe, reinterpret_cast<void*>(static_cast<uintptr_t>(probe_id)));
  {
    std::lock_guard<std::mutex> lock(Registry().mutex);
    Registry().runs.erase(probe_id);
  }
  probe_run_id_ = 0;
  return code == 0 ? probed_embedding_size_ : 0;
}

void ModelWorker::ExecuteRun(Job& job) {
  const uint64_t run_id = job.id;
  joiner_.Reset();
  saw_finish_ = saw_error_ = false;
  perf_ = {};
  error_text_.clear();
  abort_resent_ = false;
  {
    std::lock_guard<std::mutex> lock(Registry().mutex);
    Registry().runs[run_id] = this;
  }

  int code = 0;
  // A cancel that landed between dequeue and here must not start the run at all.
  if (aborted_run_id_ != run_id) {
    code = library_->api().Run(handle_, job.request, reinterpret_cast<void*>(static_cast<uintptr_t>(run_id)));
  }

  {
    std::lock_guard<std::mutex> lock(Registry().mutex);
    Registry().runs.erase(run_id);
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    running_run_id_ = 0;
  }

  RunEndEvent end;
  end.run_id = run_id;
  end.time_us = MonotonicMicros();
  end.has_perf = saw_finish_;
  end.perf = perf_;
  if (aborted_run_id_ == run_id) {
    end.status = RunStatus::kAborted;
  } else if (saw_error_ || code != 0) {
    end.status = RunStatus::kError;
    std::string message = "rkllm_run: " + (saw_error_ && !error_text_.empty() ? error_text_ : "the runtime reported an error");
    end.error = code != 0 ? CallError("RUN_FAILED", message + " (returned " + std::to_string(code) + ")", "rkllm_run", code)
                          : NativeError("RUN_FAILED", message);
  } else {
    // Whatever is still held can never be completed now: the joiner hands it over as it can.
    std::string rest = joiner_.Flush();
    if (!rest.empty()) {
      TokenEvent token;
      token.run_id = run_id;
      token.text = std::move(rest);
      token.token_id = -1;
      token.time_us = end.time_us;
      sink_->Post(std::move(token));
    }
  }
  sink_->Post(std::move(end));
}

int ModelWorker::OnResult(uint64_t run_id, rkllm::Result* result, rkllm::CallState state) {
  if (run_id == probe_run_id_) {
    if (result != nullptr && result->last_hidden_layer.embd_size > 0) probed_embedding_size_ = result->last_hidden_layer.embd_size;
    return rkllm::kContinue;
  }
  // Tokens that arrive after an abort was asked for belong to a run nobody wants any more. If
  // they keep coming, the abort may have reached the runtime before the run began: send it again.
  if (aborted_run_id_ == run_id) {
    if (!abort_resent_) {
      abort_resent_ = true;
      AbortOnHelperThread(0, true);
    } else {
      // An abort that found no thread is tried again as long as the run goes on.
      bool retry;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        retry = abort_start_failed_ && !abort_in_flight_;
      }
      if (retry) AbortOnHelperThread(0, true);
    }
    return rkllm::kContinue;
  }
  if (result == nullptr) return rkllm::kContinue;
  switch (state) {
    case rkllm::kStateFinish:
      saw_finish_ = true;
      perf_ = result->perf;
      break;
    case rkllm::kStateError:
      saw_error_ = true;
      if (result->text != nullptr) error_text_ = result->text;
      return rkllm::kContinue;
    default:
      break;
  }
  const bool has_logits = result->logits.logits != nullptr && result->logits.vocab_size > 0;
  const bool has_hidden = result->last_hidden_layer.hidden_states != nullptr && result->last_hidden_layer.embd_size > 0;
  if (state == rkllm::kStateFinish && !has_logits && !has_hidden) return rkllm::kContinue;

  TokenEvent token;
  token.run_id = run_id;
  token.time_us = MonotonicMicros();
  token.token_id = state == rkllm::kStateFinish ? -1 : result->token_id;
  Utf8Joiner::Piece piece = joiner_.Take(state == rkllm::kStateWaiting, state == rkllm::kStateFinish ? nullptr : result->text);
  token.text = std::move(piece.text);
  token.state = piece.held ? rkllm::kStateWaiting : rkllm::kStateNormal;
  // The result's arrays are only valid inside this callback: copy them out.
  if (has_logits) {
    const rkllm::Logits& l = result->logits;
    size_t count = static_cast<size_t>(l.vocab_size) * static_cast<size_t>(l.num_tokens > 0 ? l.num_tokens : 1);
    token.logits.assign(l.logits, l.logits + count);
    token.vocab_size = l.vocab_size;
    token.logits_tokens = l.num_tokens > 0 ? l.num_tokens : 1;
    token.has_logits = true;
  }
  if (has_hidden) {
    const rkllm::HiddenLayer& h = result->last_hidden_layer;
    size_t count = static_cast<size_t>(h.embd_size) * static_cast<size_t>(h.num_tokens > 0 ? h.num_tokens : 1);
    token.hidden.assign(h.hidden_states, h.hidden_states + count);
    token.embd_size = h.embd_size;
    token.hidden_tokens = h.num_tokens > 0 ? h.num_tokens : 1;
    token.has_hidden = true;
  }
  sink_->Post(std::move(token));
  return rkllm::kContinue;
}

void ModelWorker::EnqueueRun(uint64_t run_id, RunRequest request) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    Job job{Job::kRun, run_id, std::move(request), nullptr};
    queue_.push_back(std::move(job));
  }
  wake_.notify_one();
}

void ModelWorker::EnqueueCall(uint64_t call_id, Call call) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    queue_.push_back(Job{Job::kCall, call_id, RunRequest{}, std::move(call)});
  }
  wake_.notify_one();
}

bool ModelWorker::Cancel(uint64_t run_id) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto it = queue_.begin(); it != queue_.end(); ++it) {
      if (it->kind == Job::kRun && it->id == run_id) {
        queue_.erase(it);
        RunEndEvent end;
        end.run_id = run_id;
        end.status = RunStatus::kAborted;
        end.time_us = MonotonicMicros();
        sink_->Post(std::move(end));
        return true;
      }
    }
    if (running_run_id_ != run_id) return false;
    aborted_run_id_ = run_id;
  }
  AbortOnHelperThread(0);
  return true;
}

void ModelWorker::RequestAbortOfCurrentRun() {
  uint64_t current = running_run_id_;
  if (current == 0) return;
  aborted_run_id_ = current;
  AbortOnHelperThread(0);
}

void ModelWorker::Abort(uint64_t call_id) {
  uint64_t current = running_run_id_;
  if (current == 0) {
    AbortOnHelperThread(call_id);
    return;
  }
  const uint64_t previous = aborted_run_id_.exchange(current);
  // Refused for want of a thread: nothing was done, so the run goes on as if never asked.
  if (!AbortOnHelperThread(call_id)) aborted_run_id_ = previous;
}

// rkllm_abort can take over a second to land, so it never runs on the JS thread. One call at a
// time per model: a flood of aborts costs one thread, not one each. The handle is held shared
// meanwhile so that the worker cannot destroy it under the call.
bool ModelWorker::AbortOnHelperThread(uint64_t call_id, bool again_if_in_flight) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (call_id != 0) abort_waiters_.push_back(call_id);
    if (abort_in_flight_) {
      // A run that started under the abort in flight may have missed it: one more call after it.
      if (again_if_in_flight) abort_again_ = true;
      return true;
    }
    abort_in_flight_ = true;
  }
  if (!sink_->AcquireThread()) {
    // The process is exiting: nobody is left to answer.
    std::lock_guard<std::mutex> lock(mutex_);
    abort_in_flight_ = false;
    abort_waiters_.clear();
    aborts_landed_.notify_all();
    return true;
  }
  try {
    std::thread([self = shared_from_this()] { self->AbortHelperMain(); }).detach();
  } catch (const std::system_error& error) {
    std::vector<uint64_t> refused;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      refused.swap(abort_waiters_);
      abort_in_flight_ = false;
      abort_again_ = false;
      abort_start_failed_ = true;
    }
    aborts_landed_.notify_all();
    const NativeError why = NoThreadError("rkllm_abort", error);
    for (uint64_t id : refused) sink_->Post(CallDoneEvent{id, -1, why});
    sink_->ReleaseThread();
    return false;
  }
  return true;
}

void ModelWorker::AbortHelperMain() {
  for (;;) {
    int code = 0;
    {
      std::shared_lock<std::shared_mutex> lock(handle_mutex_);
      if (handle_live_) code = library_->api().Abort(handle_);
    }
    std::vector<uint64_t> answered;
    bool again;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      answered.swap(abort_waiters_);
      again = abort_again_;
      abort_again_ = false;
      abort_start_failed_ = false;
      if (!again) abort_in_flight_ = false;
    }
    for (uint64_t id : answered) sink_->Post(CallDoneEvent{id, code, {}});
    if (!again) break;
  }
  aborts_landed_.notify_all();
  sink_->ReleaseThread();
}

// rkllm_abort stops whatever runs on the handle, not a given run: one that is still on its way
// when the next run starts would stop that run instead. So no run starts while one is in flight.
void ModelWorker::WaitForAbortsToLand() {
  std::unique_lock<std::mutex> lock(mutex_);
  bool landed = aborts_landed_.wait_for(lock, std::chrono::milliseconds(kAbortLandingTimeoutMs),
                                        [this] { return !abort_in_flight_; });
  if (!landed) {
    std::fprintf(stderr, "rkllm-serve: rkllm_abort has not returned after %d ms; starting the next run anyway\n",
                 kAbortLandingTimeoutMs);
  }
}

void ModelWorker::DropQueuedLocked(const char* why) {
  for (Job& job : queue_) {
    if (job.kind == Job::kRun) {
      RunEndEvent end;
      end.run_id = job.id;
      end.status = RunStatus::kAborted;
      end.time_us = MonotonicMicros();
      sink_->Post(std::move(end));
    } else if (job.kind == Job::kCall) {
      sink_->Post(CallDoneEvent{job.id, -1, {"MODEL_DESTROYED", why}});
    }
  }
  queue_.clear();
}

void ModelWorker::Destroy(uint64_t call_id) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (destroy_requested_) {
      sink_->Post(CallDoneEvent{call_id, -1, {"MODEL_DESTROYED", "The model is already destroyed."}});
      return;
    }
    destroy_requested_ = true;
    DropQueuedLocked("The model was destroyed before this call ran.");
    queue_.push_back(Job{Job::kDestroy, call_id, RunRequest{}, nullptr});
  }
  wake_.notify_one();
  RequestAbortOfCurrentRun();
}

void ModelWorker::ExecuteDestroy(uint64_t call_id) {
  int code;
  {
    std::unique_lock<std::shared_mutex> lock(handle_mutex_);
    handle_live_ = false;
    code = library_->api().Destroy(handle_);
    handle_ = nullptr;
  }
  sink_->Post(CallDoneEvent{call_id, code, {}});
}

bool ModelWorker::IsRunning() {
  std::shared_lock<std::shared_mutex> lock(handle_mutex_, std::try_to_lock);
  if (!lock.owns_lock() || !handle_live_) return false;
  return library_->api().IsRunning(handle_);
}

std::vector<int> ModelWorker::KvCacheSizes() {
  std::vector<int> sizes(params_.n_batch > 0 ? params_.n_batch : 1, 0);
  std::shared_lock<std::shared_mutex> lock(handle_mutex_, std::try_to_lock);
  if (!lock.owns_lock() || !handle_live_) return {};
  if (library_->api().GetKvCacheSize(handle_, sizes) != 0) return {};
  return sizes;
}

void ModelWorker::ShutdownAndWait(int timeout_ms) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!destroy_requested_ && !thread_exited_) {
      destroy_requested_ = true;
      DropQueuedLocked("The process is exiting.");
      queue_.push_back(Job{Job::kDestroy, 0, RunRequest{}, nullptr});
    }
  }
  wake_.notify_one();
  uint64_t current = running_run_id_;
  if (current != 0) {
    aborted_run_id_ = current;
    std::shared_lock<std::shared_mutex> lock(handle_mutex_, std::try_to_lock);
    if (lock.owns_lock() && handle_live_) library_->api().Abort(handle_);
  }
  std::unique_lock<std::mutex> lock(mutex_);
  exited_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [this] { return thread_exited_; });
}

}  // namespace rkllm_serve
