// One loaded model: its runtime handle and the native thread that owns it. Every call that can
// block (init, run, destroy, and the calls that read files or change state) runs on this thread,
// in the order JavaScript asked for them; a request to a busy model waits its turn. The cheap
// queries (is_running, kv cache size) and abort are answered without waiting behind a run.
//
// At most one rkllm_abort is in flight per model, on a helper thread of its own: aborts asked for
// meanwhile join it and get its return code. A thread that cannot be started (the process is at
// its thread limit) becomes an error answer (RESOURCE_EXHAUSTED), never a crash.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <vector>

#include "model_events.h"
#include "params.h"
#include "runtime_library.h"
#include "utf8_joiner.h"

namespace rkllm_serve {

// Ids of runs and calls, unique across models (a run id doubles as the runtime's userdata).
uint64_t NextNativeId();

class ModelWorker : public std::enable_shared_from_this<ModelWorker> {
 public:
  using Call = std::function<int(const RuntimeApi& api, rkllm::Handle handle)>;

  ModelWorker(std::shared_ptr<RuntimeLibrary> library, ModelParams params, std::shared_ptr<EventSink> sink);
  ~ModelWorker();

  // Starts the thread; its first job is rkllm_init, answered as CallDone(init_call_id). When no
  // thread can be started, the init is answered with RESOURCE_EXHAUSTED instead.
  void Start(uint64_t init_call_id);

  // All of the following are called on the JS thread.
  void EnqueueRun(uint64_t run_id, RunRequest request);
  void EnqueueCall(uint64_t call_id, Call call);
  // Queued: removed, its end is 'aborted'. Running: aborted. Returns false if unknown.
  bool Cancel(uint64_t run_id);
  // rkllm_abort on another thread (it can take over a second); answered as CallDone(call_id),
  // with the return code of the abort in flight if there is one.
  void Abort(uint64_t call_id);
  // Drops what is queued, aborts what runs, then rkllm_destroy; answered as CallDone(call_id).
  void Destroy(uint64_t call_id);
  bool IsRunning();
  std::vector<int> KvCacheSizes();
  // What a run's input is checked against: the model's embedding size (known once init has
  // answered; 0 when it could not be learnt) and the library's ABI.
  InputLimits Limits() const { return InputLimits{embedding_size_.load(), library_->info().abi}; }

  // For process exit: destroy with a bounded wait, on whatever thread calls it.
  void ShutdownAndWait(int timeout_ms);

  // The runtime's result callback lands here (through the run registry in model_worker.cc).
  int OnResult(uint64_t run_id, rkllm::Result* result, rkllm::CallState state);

  static rkllm::ResultCallback ResultCallback();

 private:
  struct Job {
    enum Kind { kRun, kCall, kDestroy } kind;
    uint64_t id = 0;
    RunRequest request;
    Call call;
  };

  void ThreadMain(uint64_t init_call_id);
  int32_t ProbeEmbeddingSize();
  void ExecuteRun(Job& job);
  void ExecuteDestroy(uint64_t call_id);
  void DropQueuedLocked(const char* why);
  void RequestAbortOfCurrentRun();
  // False when no thread could be started (its waiters are answered with RESOURCE_EXHAUSTED).
  bool AbortOnHelperThread(uint64_t call_id, bool again_if_in_flight = false);
  void AbortHelperMain();
  void WaitForAbortsToLand();

  const std::shared_ptr<RuntimeLibrary> library_;
  const ModelParams params_;  // model_path must outlive the handle
  const std::shared_ptr<EventSink> sink_;

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Job> queue_;
  bool destroy_requested_ = false;  // guarded by mutex_; also read on the JS thread only
  bool thread_exited_ = false;
  std::condition_variable exited_;
  // The one rkllm_abort in flight, and the calls waiting for its return code (guarded by mutex_).
  bool abort_in_flight_ = false;
  bool abort_again_ = false;        // a run started under the abort in flight: abort once more
  bool abort_start_failed_ = false;  // the last abort found no thread; a running run retries it
  std::vector<uint64_t> abort_waiters_;
  std::condition_variable aborts_landed_;

  // The handle is created and destroyed by the worker; abort helpers hold it shared meanwhile.
  std::shared_mutex handle_mutex_;
  rkllm::Handle handle_ = nullptr;
  std::atomic<bool> handle_live_{false};

  std::atomic<uint64_t> running_run_id_{0};
  std::atomic<uint64_t> aborted_run_id_{0};

  // The model's floats per token, from the run ProbeEmbeddingSize makes after init.
  std::atomic<int32_t> embedding_size_{0};
  std::atomic<uint64_t> probe_run_id_{0};
  int32_t probed_embedding_size_ = 0;  // written by the probe's callback

  // State of the run in progress; touched only by the runtime's callback thread while it runs.
  Utf8Joiner joiner_;
  bool saw_finish_ = false;
  bool saw_error_ = false;
  bool abort_resent_ = false;
  rkllm::Perf perf_{};
  std::string error_text_;
};

}  // namespace rkllm_serve
