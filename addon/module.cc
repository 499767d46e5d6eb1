// Entry point of the native module: exports setErrorClass, openRuntime, and for model hosts
// setParentDeathSignal, exitWithoutTeardown and setThreadLimit (see
// lib/native/binding.ts for the shape JavaScript sees).
#include <napi.h>

#include "addon_data.h"
#include "errors.h"
#include "model.h"
#include "process_guard.h"
#include "runtime.h"

namespace rkllm_serve {
namespace {

Napi::Value SetErrorClassMethod(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsFunction()) ThrowInvalidArgument(info.Env(), "cls", "must be a class");
  SetErrorClass(info.Env(), info[0].As<Napi::Function>());
  return info.Env().Undefined();
}

}  // namespace

Napi::Object InitModule(Napi::Env env, Napi::Object exports) {
  auto* data = new AddonData();
  env.SetInstanceData(data);
  data->runtime_constructor = Napi::Persistent(Runtime::DefineClass(env));
  data->model_constructor = Napi::Persistent(Model::DefineClass(env));
  exports.Set("setErrorClass", Napi::Function::New(env, SetErrorClassMethod, "setErrorClass"));
  exports.Set("openRuntime", Napi::Function::New(env, OpenRuntime, "openRuntime"));
  exports.Set("setParentDeathSignal", Napi::Function::New(env, SetParentDeathSignal, "setParentDeathSignal"));
  exports.Set("exitWithoutTeardown", Napi::Function::New(env, ExitWithoutTeardown, "exitWithoutTeardown"));
  exports.Set("setThreadLimit", Napi::Function::New(env, SetThreadLimit, "setThreadLimit"));
  return exports;
}

}  // namespace rkllm_serve

// The registration macro pastes its function name into an identifier: it needs an unqualified one.
using rkllm_serve::InitModule;
NODE_API_MODULE(rkllm_serve, InitModule)
