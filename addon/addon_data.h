// Per-environment state of the addon (one per Node environment: main thread or worker).
#pragma once

#include <napi.h>

namespace rkllm_serve {

struct AddonData {
  Napi::FunctionReference error_class;
  Napi::FunctionReference runtime_constructor;
  Napi::FunctionReference model_constructor;

  static AddonData& From(Napi::Env env) { return *env.GetInstanceData<AddonData>(); }
};

}  // namespace rkllm_serve
