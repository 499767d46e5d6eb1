#include "js_event_sink.h"

#include <algorithm>
#include <cstdlib>
#include <iterator>

#include "model_worker.h"

namespace rkllm_serve {
namespace {

// Sinks still able to reach a worker, for the process-exit path (process.exit() runs no
// environment cleanup hooks). Leaked on purpose: it is read from an atexit handler.
struct LiveSinks {
  std::mutex mutex;
  std::vector<std::weak_ptr<JsEventSink>> sinks;
};
LiveSinks& Live() {
  static LiveSinks* live = new LiveSinks();
  return *live;
}

// The most events one drain hands to JavaScript. A runtime faster than the JS thread (the
// emulator's sim:instant makes millions of tokens a second) would otherwise deliver its whole
// backlog as one batch: every object of it alive at once, past the young generation, and no socket
// written until the batch is through. The rest waits for the next turn of the event loop.
constexpr size_t kMaxEventsPerDrain = 256;

// How long exit waits for a model to stop and be destroyed before giving up on it.
constexpr int kExitShutdownMs = 3000;

const char* StatusName(RunStatus status) {
  switch (status) {
    case RunStatus::kFinish:
      return "finish";
    case RunStatus::kError:
      return "error";
    default:
      return "aborted";
  }
}

Napi::Object FloatBlock(Napi::Env env, std::vector<float>& values, const char* size_name, int32_t size,
                        int32_t num_tokens) {
  Napi::Float32Array data = Napi::Float32Array::New(env, values.size());
  std::copy(values.begin(), values.end(), data.Data());
  Napi::Object block = Napi::Object::New(env);
  block.Set("data", data);
  block.Set(size_name, size);
  block.Set("num_tokens", num_tokens);
  return block;
}

Napi::Value ToJs(Napi::Env env, ModelEvent& event) {
  Napi::Object out = Napi::Object::New(env);
  if (auto* token = std::get_if<TokenEvent>(&event)) {
    out.Set("kind", "token");
    out.Set("state", token->state);
    out.Set("text", Napi::String::New(env, token->text));
    out.Set("token_id", token->token_id);
    out.Set("time_us", token->time_us);
    if (token->has_logits) {
      out.Set("logits", FloatBlock(env, token->logits, "vocab_size", token->vocab_size, token->logits_tokens));
    }
    if (token->has_hidden) {
      out.Set("last_hidden_layer",
              FloatBlock(env, token->hidden, "embd_size", token->embd_size, token->hidden_tokens));
    }
    return out;
  }
  auto& end = std::get<RunEndEvent>(event);
  out.Set("kind", "end");
  out.Set("status", StatusName(end.status));
  out.Set("time_us", end.time_us);
  if (end.has_perf) {
    Napi::Object perf = Napi::Object::New(env);
    perf.Set("prefill_time_ms", end.perf.prefill_time_ms);
    perf.Set("prefill_tokens", end.perf.prefill_tokens);
    perf.Set("generate_time_ms", end.perf.generate_time_ms);
    perf.Set("generate_tokens", end.perf.generate_tokens);
    perf.Set("memory_usage_mb", end.perf.memory_usage_mb);
    out.Set("perf", perf);
  }
  if (end.status == RunStatus::kError) {
    Napi::Object error = Napi::Object::New(env);
    error.Set("code", end.error.code);
    error.Set("message", end.error.message);
    if (!end.error.fn.empty()) error.Set("fn", end.error.fn);
    if (end.error.return_code) error.Set("returnCode", *end.error.return_code);
    out.Set("error", error);
  }
  return out;
}

uint64_t RunIdOf(const ModelEvent& event) {
  if (auto* token = std::get_if<TokenEvent>(&event)) return token->run_id;
  if (auto* end = std::get_if<RunEndEvent>(&event)) return end->run_id;
  return 0;
}

}  // namespace

std::shared_ptr<JsEventSink> JsEventSink::Create(Napi::Env env) {
  std::shared_ptr<JsEventSink> sink(new JsEventSink());
  sink->env_ = env;
  // The ThreadSafeFunction owns a share of the sink until it is finalized on the JS thread.
  auto* keep_alive = new std::shared_ptr<JsEventSink>(sink);
  sink->tsfn_ = Tsfn::New(
      env, Napi::Function(), Napi::Object::New(env), "rkllm-serve model events", 0, 1, sink.get(),
      [](Napi::Env env, std::shared_ptr<JsEventSink>* holder, JsEventSink* self) {
        if (self->exit_hook_registered_) napi_remove_env_cleanup_hook(env, &JsEventSink::OnEnvCleanup, self);
        self->listeners_.clear();
        self->calls_.clear();
        delete holder;
      },
      keep_alive);
  sink->tsfn_.Unref(env);
  return sink;
}

void JsEventSink::Post(ModelEvent&& event) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (closed_) return;
  outbox_.push_back(std::move(event));
  if (drain_scheduled_) return;
  drain_scheduled_ = true;
  tsfn_.NonBlockingCall();
}

bool JsEventSink::AcquireThread() {
  std::lock_guard<std::mutex> lock(mutex_);
  return !closed_ && tsfn_.Acquire() == napi_ok;
}

void JsEventSink::ReleaseThread() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!closed_) tsfn_.Release();
}

void JsEventSink::CallJs(Napi::Env env, Napi::Function, JsEventSink* sink, void*) {
  if (env == nullptr || sink == nullptr) return;  // the environment is being torn down
  sink->Drain(env);
}

void JsEventSink::Drain(Napi::Env env) {
  std::vector<ModelEvent> events;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    const size_t taken = std::min(outbox_.size(), kMaxEventsPerDrain);
    events.reserve(taken);
    std::move(outbox_.begin(), outbox_.begin() + static_cast<std::ptrdiff_t>(taken), std::back_inserter(events));
    outbox_.erase(outbox_.begin(), outbox_.begin() + static_cast<std::ptrdiff_t>(taken));
    // Still scheduled while events wait: the next drain is queued behind the I/O of this turn.
    drain_scheduled_ = !outbox_.empty() && !closed_;
    if (drain_scheduled_) tsfn_.NonBlockingCall();
  }
  Napi::HandleScope scope(env);
  // A listener that throws must not starve the others; its error surfaces afterwards.
  Napi::Error first_error;
  size_t i = 0;
  while (i < events.size()) {
    if (auto* done = std::get_if<CallDoneEvent>(&events[i])) {
      SettleCall(env, *done);
      ++i;
      continue;
    }
    uint64_t run_id = RunIdOf(events[i]);
    size_t end = i + 1;
    while (end < events.size() && !std::holds_alternative<CallDoneEvent>(events[end]) &&
           RunIdOf(events[end]) == run_id) {
      ++end;
    }
    try {
      DeliverRunEvents(env, run_id, events, i, end);
    } catch (const Napi::Error& error) {
      if (first_error.IsEmpty()) first_error = error;
    }
    i = end;
  }
  if (!first_error.IsEmpty()) first_error.ThrowAsJavaScriptException();
}

void JsEventSink::DeliverRunEvents(Napi::Env env, uint64_t run_id, std::vector<ModelEvent>& events, size_t begin,
                                   size_t end) {
  auto found = listeners_.find(run_id);
  if (found == listeners_.end()) return;
  const bool ends_run = std::holds_alternative<RunEndEvent>(events[end - 1]);
  Napi::Array batch = Napi::Array::New(env, end - begin);
  for (size_t k = begin; k < end; ++k) batch.Set(static_cast<uint32_t>(k - begin), ToJs(env, events[k]));
  Napi::Function listener = found->second.Value();
  if (ends_run) {
    listeners_.erase(found);
    RemovePending(env);
  }
  listener.Call({batch});
}

void JsEventSink::SettleCall(Napi::Env env, CallDoneEvent& done) {
  auto found = calls_.find(done.call_id);
  if (found == calls_.end()) return;
  Napi::Promise::Deferred deferred = found->second;
  calls_.erase(found);
  RemovePending(env);
  if (!done.error.ok()) {
    deferred.Reject(MakeError(env, done.error).Value());
  } else if (done.call_id == init_call_id_ && make_model_) {
    auto make_model = std::move(make_model_);
    deferred.Resolve(make_model(env));
  } else {
    deferred.Resolve(Napi::Number::New(env, done.return_code));
  }
}

void JsEventSink::ListenToRun(Napi::Env env, uint64_t run_id, Napi::Function listener) {
  listeners_[run_id] = Napi::Persistent(listener);
  AddPending(env);
}

Napi::Promise JsEventSink::AwaitCall(Napi::Env env, uint64_t call_id) {
  auto deferred = Napi::Promise::Deferred::New(env);
  calls_.emplace(call_id, deferred);
  AddPending(env);
  return deferred.Promise();
}

Napi::Promise JsEventSink::AwaitInit(Napi::Env env, uint64_t call_id, std::function<Napi::Value(Napi::Env)> make_model) {
  init_call_id_ = call_id;
  make_model_ = std::move(make_model);
  return AwaitCall(env, call_id);
}

void JsEventSink::AddPending(Napi::Env env) {
  if (pending_++ == 0) {
    tsfn_.Ref(env);
    if (on_pending_change_) on_pending_change_(true);
  }
}

void JsEventSink::RemovePending(Napi::Env env) {
  if (pending_ > 0 && --pending_ == 0) {
    tsfn_.Unref(env);
    if (on_pending_change_) on_pending_change_(false);
  }
}

void JsEventSink::GuardExit(Napi::Env env, std::weak_ptr<ModelWorker> worker) {
  guarded_worker_ = std::move(worker);
  // Registered after the ThreadSafeFunction was created, so it runs before Node tears that down
  // (cleanup hooks run in reverse order): the worker is stopped while the sink is still whole.
  napi_add_env_cleanup_hook(env, &JsEventSink::OnEnvCleanup, this);
  exit_hook_registered_ = true;
  LiveSinks& live = Live();
  std::lock_guard<std::mutex> lock(live.mutex);
  live.sinks.erase(std::remove_if(live.sinks.begin(), live.sinks.end(),
                                  [](const std::weak_ptr<JsEventSink>& sink) { return sink.expired(); }),
                   live.sinks.end());
  live.sinks.push_back(shared_from_this());
}

void JsEventSink::RegisterProcessExitHook() {
  // Called after each runtime library is first loaded, so that the handler runs before that
  // library's own static destructors (atexit runs in reverse order): models are stopped while
  // the runtime is still intact. Running it more than once is harmless.
  std::atexit(&JsEventSink::OnProcessExit);
}

void JsEventSink::OnEnvCleanup(void* sink) {
  auto* self = static_cast<JsEventSink*>(sink);
  self->exit_hook_registered_ = false;
  self->ShutdownForExit();
}

void JsEventSink::OnProcessExit() {
  std::vector<std::shared_ptr<JsEventSink>> sinks;
  {
    LiveSinks& live = Live();
    std::lock_guard<std::mutex> lock(live.mutex);
    for (auto& weak : live.sinks) {
      if (auto sink = weak.lock()) sinks.push_back(sink);
    }
  }
  for (auto& sink : sinks) sink->ShutdownForExit();
}

void JsEventSink::ShutdownForExit() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    closed_ = true;
  }
  if (auto worker = guarded_worker_.lock()) worker->ShutdownAndWait(kExitShutdownMs);
}

}  // namespace rkllm_serve
