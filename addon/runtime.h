// The JavaScript class of an opened runtime library (NativeRuntime in lib/native/binding.ts),
// and openRuntime(), which opens one off the JS thread.
#pragma once

#include <napi.h>

#include <memory>

#include "runtime_library.h"

namespace rkllm_serve {

class Runtime : public Napi::ObjectWrap<Runtime> {
 public:
  static Napi::Function DefineClass(Napi::Env env);
  explicit Runtime(const Napi::CallbackInfo& info);

 private:
  Napi::Value Info(const Napi::CallbackInfo& info);
  Napi::Value CreateDefaultParam(const Napi::CallbackInfo& info);
  Napi::Value Init(const Napi::CallbackInfo& info);

  std::shared_ptr<RuntimeLibrary> library_;
};

// openRuntime({ path, abi? }): Promise<NativeRuntime>
Napi::Value OpenRuntime(const Napi::CallbackInfo& info);

}  // namespace rkllm_serve
