// Carries a model's events from native threads to JavaScript through one typed
// ThreadSafeFunction. Events are appended to an outbox and the JS thread is woken once per
// non-empty outbox, so a fast run costs one wake-up per batch rather than one per token, and
// everything arrives in the order it was posted.
//
// The ThreadSafeFunction is referenced only while something is pending (a run, or a call whose
// promise is unsettled): an idle model never keeps the process alive.
#pragma once

#include <napi.h>

#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "model_events.h"

namespace rkllm_serve {

class ModelWorker;

class JsEventSink final : public EventSink, public std::enable_shared_from_this<JsEventSink> {
 public:
  static std::shared_ptr<JsEventSink> Create(Napi::Env env);

  // EventSink: any thread.
  void Post(ModelEvent&& event) override;
  bool AcquireThread() override;
  void ReleaseThread() override;

  // JS thread only.
  void ListenToRun(Napi::Env env, uint64_t run_id, Napi::Function listener);
  Napi::Promise AwaitCall(Napi::Env env, uint64_t call_id);
  // The init call resolves to a value made on the JS thread (the Model object) instead of a code.
  Napi::Promise AwaitInit(Napi::Env env, uint64_t call_id, std::function<Napi::Value(Napi::Env)> make_model);
  // Lets the owner hold its JS object while something is pending.
  void OnPendingChange(std::function<void(bool pending)> callback) { on_pending_change_ = std::move(callback); }
  // Shuts the model down when the environment goes away or the process exits.
  void GuardExit(Napi::Env env, std::weak_ptr<ModelWorker> worker);
  // Call once after each newly loaded runtime library (see the definition for why).
  static void RegisterProcessExitHook();

 private:
  static void CallJs(Napi::Env env, Napi::Function unused, JsEventSink* sink, void* unused_data);
  using Tsfn = Napi::TypedThreadSafeFunction<JsEventSink, void, &JsEventSink::CallJs>;
  static void OnEnvCleanup(void* sink);
  static void OnProcessExit();

  JsEventSink() = default;
  void Drain(Napi::Env env);
  void DeliverRunEvents(Napi::Env env, uint64_t run_id, std::vector<ModelEvent>& events, size_t begin, size_t end);
  void SettleCall(Napi::Env env, CallDoneEvent& done);
  void AddPending(Napi::Env env);
  void RemovePending(Napi::Env env);
  void ShutdownForExit();

  Tsfn tsfn_;
  napi_env env_ = nullptr;

  std::mutex mutex_;
  std::deque<ModelEvent> outbox_;
  bool drain_scheduled_ = false;
  bool closed_ = false;  // set at exit: nothing may touch the ThreadSafeFunction any more

  // JS thread only.
  std::unordered_map<uint64_t, Napi::FunctionReference> listeners_;
  std::unordered_map<uint64_t, Napi::Promise::Deferred> calls_;
  uint64_t init_call_id_ = 0;
  std::function<Napi::Value(Napi::Env)> make_model_;
  size_t pending_ = 0;
  std::function<void(bool)> on_pending_change_;
  std::weak_ptr<ModelWorker> guarded_worker_;
  bool exit_hook_registered_ = false;
};

}  // namespace rkllm_serve
