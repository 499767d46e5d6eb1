#include "model.h"

#include <atomic>

#include "addon_data.h"
#include "errors.h"

namespace rkllm_serve {

uint64_t NextNativeId() {
  static std::atomic<uint64_t> next{1};
  return next++;
}

namespace {

struct WrapArgs {
  std::shared_ptr<ModelWorker> worker;
  std::shared_ptr<JsEventSink> sink;
};

}  // namespace

Napi::Function Model::DefineClass(Napi::Env env) {
  return ObjectWrap<Model>::DefineClass(
      env, "NativeModel",
      {
          InstanceMethod<&Model::Run>("run"),
          InstanceMethod<&Model::Cancel>("cancel"),
          InstanceMethod<&Model::Abort>("abort"),
          InstanceMethod<&Model::IsRunning>("isRunning"),
          InstanceMethod<&Model::GetKvCacheSize>("getKvCacheSize"),
          InstanceMethod<&Model::LoadLora>("loadLora"),
          InstanceMethod<&Model::LoadPromptCache>("loadPromptCache"),
          InstanceMethod<&Model::ReleasePromptCache>("releasePromptCache"),
          InstanceMethod<&Model::ClearKvCache>("clearKvCache"),
          InstanceMethod<&Model::SetChatTemplate>("setChatTemplate"),
          InstanceMethod<&Model::SetFunctionTools>("setFunctionTools"),
          InstanceMethod<&Model::SetCrossAttnParams>("setCrossAttnParams"),
          InstanceMethod<&Model::Destroy>("destroy"),
          InstanceAccessor<&Model::Destroyed>("destroyed"),
          InstanceAccessor<&Model::EmbeddingSize>("embeddingSize"),
      });
}

Napi::Object Model::NewInstance(Napi::Env env, std::shared_ptr<ModelWorker> worker, std::shared_ptr<JsEventSink> sink) {
  WrapArgs args{std::move(worker), std::move(sink)};
  return AddonData::From(env).model_constructor.New({Napi::External<WrapArgs>::New(env, &args)});
}

Model::Model(const Napi::CallbackInfo& info) : ObjectWrap<Model>(info) {
  if (info.Length() != 1 || !info[0].IsExternal()) {
    throw Napi::TypeError::New(info.Env(), "NativeModel is made by NativeRuntime.init()");
  }
  auto* args = info[0].As<Napi::External<WrapArgs>>().Data();
  worker_ = args->worker;
  sink_ = args->sink;
  // Hold this object while a run or call is pending, so that a model nobody references can
  // still finish what it was asked to do.
  sink_->OnPendingChange([this](bool pending) {
    if (pending) {
      Ref();
    } else {
      Unref();
    }
  });
}

Model::~Model() {
  sink_->OnPendingChange(nullptr);
  // Collected without destroy(): free the runtime's model in the background.
  if (!destroyed_) worker_->Destroy(0);
}

namespace {
const char* kDestroyedMessage = "The model was destroyed; load it again to use it.";
}  // namespace

void Model::ThrowIfDestroyed(Napi::Env env) const {
  if (destroyed_) throw MakeError(env, "MODEL_DESTROYED", kDestroyedMessage);
}

Napi::Value Model::RejectDestroyed(Napi::Env env) const {
  auto deferred = Napi::Promise::Deferred::New(env);
  deferred.Reject(MakeError(env, "MODEL_DESTROYED", kDestroyedMessage).Value());
  return deferred.Promise();
}

Napi::Value Model::Run(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ThrowIfDestroyed(env);
  if (info.Length() < 3 || !info[2].IsFunction()) ThrowInvalidArgument(env, "listener", "must be a function");
  RunRequest request = ReadRunRequest(info[0], info[1], worker_->Limits());
  uint64_t run_id = NextNativeId();
  sink_->ListenToRun(env, run_id, info[2].As<Napi::Function>());
  worker_->EnqueueRun(run_id, std::move(request));
  return Napi::Number::New(env, static_cast<double>(run_id));
}

Napi::Value Model::Cancel(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) ThrowInvalidArgument(env, "runId", "must be a number");
  if (destroyed_) return Napi::Boolean::New(env, false);
  uint64_t run_id = static_cast<uint64_t>(info[0].As<Napi::Number>().Int64Value());
  return Napi::Boolean::New(env, worker_->Cancel(run_id));
}

Napi::Value Model::Abort(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (destroyed_) return RejectDestroyed(env);
  uint64_t call_id = NextNativeId();
  Napi::Promise promise = sink_->AwaitCall(env, call_id);
  worker_->Abort(call_id);
  return promise;
}

Napi::Value Model::IsRunning(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), !destroyed_ && worker_->IsRunning());
}

Napi::Value Model::GetKvCacheSize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ThrowIfDestroyed(env);
  std::vector<int> sizes = worker_->KvCacheSizes();
  Napi::Array out = Napi::Array::New(env, sizes.size());
  for (size_t i = 0; i < sizes.size(); ++i) out.Set(static_cast<uint32_t>(i), sizes[i]);
  return out;
}

Napi::Value Model::QueueCall(Napi::Env env, ModelWorker::Call call) {
  if (destroyed_) return RejectDestroyed(env);
  uint64_t call_id = NextNativeId();
  Napi::Promise promise = sink_->AwaitCall(env, call_id);
  worker_->EnqueueCall(call_id, std::move(call));
  return promise;
}

Napi::Value Model::LoadLora(const Napi::CallbackInfo& info) {
  auto adapter = std::make_shared<LoraAdapterParams>(ReadLoraAdapter(info[0]));
  return QueueCall(info.Env(), [adapter](const RuntimeApi& api, rkllm::Handle handle) {
    return api.LoadLora(handle, *adapter);
  });
}

Napi::Value Model::LoadPromptCache(const Napi::CallbackInfo& info) {
  std::string path = ReadString(info[0], "prompt_cache_path");
  return QueueCall(info.Env(), [path](const RuntimeApi& api, rkllm::Handle handle) {
    return api.LoadPromptCache(handle, path);
  });
}

Napi::Value Model::ReleasePromptCache(const Napi::CallbackInfo& info) {
  return QueueCall(info.Env(), [](const RuntimeApi& api, rkllm::Handle handle) { return api.ReleasePromptCache(handle); });
}

Napi::Value Model::ClearKvCache(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsBoolean()) ThrowInvalidArgument(env, "keep_system_prompt", "must be a boolean");
  bool keep_system_prompt = info[0].As<Napi::Boolean>().Value();
  auto has = [&info](size_t i) { return info.Length() > i && !info[i].IsUndefined() && !info[i].IsNull(); };
  if (has(1) && !has(2)) ThrowInvalidArgument(env, "end_pos", "must be given with start_pos");
  if (has(2) && !has(1)) ThrowInvalidArgument(env, "start_pos", "must be given with end_pos");
  auto ranges = std::make_shared<std::pair<std::vector<int>, std::vector<int>>>();
  const bool with_ranges = has(1);
  if (with_ranges) {
    ranges->first = ReadIntArray(info[1], "start_pos");
    ranges->second = ReadIntArray(info[2], "end_pos");
    // The runtime reads one entry per batch: shorter arrays would be read past their end.
    if (ranges->first.empty()) ThrowInvalidArgument(env, "start_pos", "must have one entry per batch entry (n_batch)");
    if (ranges->second.size() != ranges->first.size()) {
      ThrowInvalidArgument(env, "end_pos", "must have as many entries as start_pos (one per batch entry)");
    }
    ranges->first.resize(256, 0);
    ranges->second.resize(256, 0);
  }
  return QueueCall(env, [keep_system_prompt, ranges, with_ranges](const RuntimeApi& api, rkllm::Handle handle) {
    return with_ranges ? api.ClearKvCache(handle, keep_system_prompt, &ranges->first, &ranges->second)
                       : api.ClearKvCache(handle, keep_system_prompt, nullptr, nullptr);
  });
}

Napi::Value Model::SetChatTemplate(const Napi::CallbackInfo& info) {
  std::string system_prompt = ReadString(info[0], "system_prompt");
  std::string prefix = ReadString(info[1], "prompt_prefix");
  std::string postfix = ReadString(info[2], "prompt_postfix");
  return QueueCall(info.Env(), [system_prompt, prefix, postfix](const RuntimeApi& api, rkllm::Handle handle) {
    return api.SetChatTemplate(handle, system_prompt, prefix, postfix);
  });
}

Napi::Value Model::SetFunctionTools(const Napi::CallbackInfo& info) {
  std::string system_prompt = ReadString(info[0], "system_prompt");
  std::string tools = ReadString(info[1], "tools");
  std::string tool_response = ReadString(info[2], "tool_response_str");
  return QueueCall(info.Env(), [system_prompt, tools, tool_response](const RuntimeApi& api, rkllm::Handle handle) {
    return api.SetFunctionTools(handle, system_prompt, tools, tool_response);
  });
}

Napi::Value Model::SetCrossAttnParams(const Napi::CallbackInfo& info) {
  auto params = std::make_shared<CrossAttnParams>(ReadCrossAttnParams(info[0]));
  return QueueCall(info.Env(), [params](const RuntimeApi& api, rkllm::Handle handle) {
    return api.SetCrossAttnParams(handle, *params);
  });
}

Napi::Value Model::Destroy(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (destroyed_) return RejectDestroyed(env);
  destroyed_ = true;
  uint64_t call_id = NextNativeId();
  Napi::Promise promise = sink_->AwaitCall(env, call_id);
  worker_->Destroy(call_id);
  return promise;
}

Napi::Value Model::Destroyed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), destroyed_); }

Napi::Value Model::EmbeddingSize(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), worker_->Limits().embedding_size);
}

}  // namespace rkllm_serve
