#include "runtime.h"

#include <mutex>
#include <set>

#include "addon_data.h"
#include "errors.h"
#include "js_event_sink.h"
#include "model.h"
#include "model_worker.h"

namespace rkllm_serve {
namespace {

// Reading the ELF header, dlopen, symbol lookup, hashing the file and reading its banner happen on
// libuv's thread pool.
class OpenRuntimeWorker : public Napi::AsyncWorker {
 public:
  OpenRuntimeWorker(Napi::Env env, std::string path, std::optional<AbiRequest> abi)
      : Napi::AsyncWorker(env, "rkllm-serve open runtime"),
        deferred_(Napi::Promise::Deferred::New(env)),
        path_(std::move(path)),
        abi_(abi) {}

  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    library_ = RuntimeLibrary::Open(path_, abi_, ModelWorker::ResultCallback(), error_);
  }

  void OnOK() override {
    Napi::Env env = Env();
    if (!library_) {
      deferred_.Reject(MakeError(env, error_).Value());
      return;
    }
    NoteLoaded(library_->info().path);
    auto* keep = new std::shared_ptr<RuntimeLibrary>(library_);
    deferred_.Resolve(AddonData::From(env).runtime_constructor.New({Napi::External<std::shared_ptr<RuntimeLibrary>>::New(
        env, keep, [](Napi::Env, std::shared_ptr<RuntimeLibrary>* held) { delete held; })}));
  }

  void OnError(const Napi::Error& error) override { deferred_.Reject(error.Value()); }

 private:
  // Each newly loaded library gets the process-exit hook registered after it (see
  // JsEventSink::RegisterProcessExitHook).
  static void NoteLoaded(const std::string& path) {
    static std::mutex mutex;
    static std::set<std::string>* seen = new std::set<std::string>();
    std::lock_guard<std::mutex> lock(mutex);
    if (seen->insert(path).second) JsEventSink::RegisterProcessExitHook();
  }

  Napi::Promise::Deferred deferred_;
  std::string path_;
  std::optional<AbiRequest> abi_;
  std::shared_ptr<RuntimeLibrary> library_;
  NativeError error_;
};

}  // namespace

Napi::Value OpenRuntime(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) ThrowInvalidArgument(env, "options", "must be an object");
  Napi::Object options = info[0].As<Napi::Object>();
  std::string path = ReadString(options.Get("path"), "options.path");
  if (path.empty()) ThrowInvalidArgument(env, "options.path", "must not be empty");
  std::optional<AbiRequest> abi;
  Napi::Value abi_value = options.Get("abi");
  if (!abi_value.IsUndefined() && !abi_value.IsNull()) {
    abi = ParseAbiRequest(abi_value.IsString() ? abi_value.As<Napi::String>().Utf8Value() : "");
    if (!abi) {
      ThrowInvalidArgument(env, "options.abi",
                           "must be an ABI ('1.2', '1.3' or '1.3.1') or a release number ('1.2.1', '1.2.2', '1.2.3', "
                           "'1.3.0' or '1.3.1')");
    }
  }
  auto* worker = new OpenRuntimeWorker(env, path, abi);
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

Napi::Function Runtime::DefineClass(Napi::Env env) {
  return ObjectWrap<Runtime>::DefineClass(env, "NativeRuntime",
                                          {
                                              InstanceAccessor<&Runtime::Info>("info"),
                                              InstanceMethod<&Runtime::CreateDefaultParam>("createDefaultParam"),
                                              InstanceMethod<&Runtime::Init>("init"),
                                          });
}

Runtime::Runtime(const Napi::CallbackInfo& info) : ObjectWrap<Runtime>(info) {
  if (info.Length() != 1 || !info[0].IsExternal()) {
    throw Napi::TypeError::New(info.Env(), "NativeRuntime is made by openRuntime()");
  }
  library_ = *info[0].As<Napi::External<std::shared_ptr<RuntimeLibrary>>>().Data();
}

Napi::Value Runtime::Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const RuntimeInfo& runtime = library_->info();
  Napi::Object out = Napi::Object::New(env);
  out.Set("path", runtime.path);
  out.Set("abi", AbiName(runtime.abi));
  out.Set("abiSource", runtime.abi_source);
  out.Set("emulated", runtime.emulated);
  if (!runtime.release.empty()) out.Set("release", runtime.release);
  if (!runtime.note.empty()) out.Set("note", runtime.note);
  return out;
}

Napi::Value Runtime::CreateDefaultParam(const Napi::CallbackInfo& info) {
  return ModelParamsToJs(info.Env(), library_->api().CreateDefaultParam(), library_->info().abi);
}

Napi::Value Runtime::Init(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ModelParams params = ReadModelParams(info.Length() > 0 ? info[0] : env.Undefined());
  auto sink = JsEventSink::Create(env);
  auto worker = std::make_shared<ModelWorker>(library_, std::move(params), sink);
  uint64_t init_call_id = NextNativeId();
  Napi::Promise promise = sink->AwaitInit(env, init_call_id, [worker, sink](Napi::Env env) -> Napi::Value {
    return Model::NewInstance(env, worker, sink);
  });
  sink->GuardExit(env, worker);
  worker->Start(init_call_id);
  return promise;
}

}  // namespace rkllm_serve
