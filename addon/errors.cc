#include "errors.h"

#include "addon_data.h"

namespace rkllm_serve {

void SetErrorClass(Napi::Env env, Napi::Function cls) {
  AddonData::From(env).error_class = Napi::Persistent(cls);
}

Napi::Error MakeError(Napi::Env env, const std::string& code, const std::string& message) {
  Napi::FunctionReference& cls = AddonData::From(env).error_class;
  if (cls.IsEmpty()) {
    Napi::Error error = Napi::Error::New(env, message);
    error.Set("code", Napi::String::New(env, code));
    return error;
  }
  Napi::Object instance = cls.New({Napi::String::New(env, message), Napi::String::New(env, code)});
  return Napi::Error(env, instance);
}

void ThrowInvalidArgument(Napi::Env env, const std::string& message) {
  throw MakeError(env, "INVALID_ARGUMENT", message);
}

}  // namespace rkllm_serve
