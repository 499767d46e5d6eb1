// The JavaScript class of a loaded model (NativeModel in lib/native/binding.ts). It reads
// arguments into plain structs on the JS thread and hands them to the model's worker.
#pragma once

#include <napi.h>

#include <memory>

#include "js_event_sink.h"
#include "model_worker.h"

namespace rkllm_serve {

class Model : public Napi::ObjectWrap<Model> {
 public:
  static Napi::Function DefineClass(Napi::Env env);
  // Wraps a worker whose rkllm_init succeeded.
  static Napi::Object NewInstance(Napi::Env env, std::shared_ptr<ModelWorker> worker,
                                  std::shared_ptr<JsEventSink> sink);

  explicit Model(const Napi::CallbackInfo& info);
  ~Model() override;

 private:
  Napi::Value Run(const Napi::CallbackInfo& info);
  Napi::Value Cancel(const Napi::CallbackInfo& info);
  Napi::Value Abort(const Napi::CallbackInfo& info);
  Napi::Value IsRunning(const Napi::CallbackInfo& info);
  Napi::Value GetKvCacheSize(const Napi::CallbackInfo& info);
  Napi::Value LoadLora(const Napi::CallbackInfo& info);
  Napi::Value LoadPromptCache(const Napi::CallbackInfo& info);
  Napi::Value ReleasePromptCache(const Napi::CallbackInfo& info);
  Napi::Value ClearKvCache(const Napi::CallbackInfo& info);
  Napi::Value SetChatTemplate(const Napi::CallbackInfo& info);
  Napi::Value SetFunctionTools(const Napi::CallbackInfo& info);
  Napi::Value SetCrossAttnParams(const Napi::CallbackInfo& info);
  Napi::Value Destroy(const Napi::CallbackInfo& info);
  Napi::Value Destroyed(const Napi::CallbackInfo& info);
  Napi::Value EmbeddingSize(const Napi::CallbackInfo& info);

  // Queues a call on the worker; the promise settles with its return code.
  Napi::Value QueueCall(Napi::Env env, ModelWorker::Call call);
  void ThrowIfDestroyed(Napi::Env env) const;
  Napi::Value RejectDestroyed(Napi::Env env) const;

  std::shared_ptr<ModelWorker> worker_;
  std::shared_ptr<JsEventSink> sink_;
  bool destroyed_ = false;
};

}  // namespace rkllm_serve
