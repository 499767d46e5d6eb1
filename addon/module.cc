// Entry point of the native module: exports setErrorClass, openRuntime, joinCallbackTexts, and for
// model hosts setParentDeathSignal, exitWithoutTeardown and setThreadLimit (see
// lib/native/binding.ts for the shape JavaScript sees).
#include <napi.h>

#include "addon_data.h"
#include "errors.h"
#include "model.h"
#include "process_guard.h"
#include "runtime.h"
#include "utf8_joiner.h"

namespace rkllm_serve {
namespace {

Napi::Value SetErrorClassMethod(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsFunction()) ThrowInvalidArgument(info.Env(), "cls", "must be a class");
  SetErrorClass(info.Env(), info[0].As<Napi::Function>());
  return info.Env().Undefined();
}

// The joiner a model's worker applies to its callbacks, run on given (state, bytes) pairs, so that
// its rule can be tested on exact bytes that no runtime is made to send.
Napi::Value JoinCallbackTexts(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsArray()) ThrowInvalidArgument(env, "callbacks", "must be an array");
  Napi::Array callbacks = info[0].As<Napi::Array>();
  Utf8Joiner joiner;
  Napi::Array pieces = Napi::Array::New(env, callbacks.Length());
  for (uint32_t i = 0; i < callbacks.Length(); ++i) {
    const std::string field = "callbacks[" + std::to_string(i) + "]";
    Napi::Value entry = callbacks.Get(i);
    if (!entry.IsObject()) ThrowInvalidArgument(env, field, "must be an object { state, bytes }");
    Napi::Object callback = entry.As<Napi::Object>();
    Napi::Value state = callback.Get("state");
    Napi::Value bytes = callback.Get("bytes");
    if (!state.IsNumber() || (state.As<Napi::Number>().Int32Value() != 0 && state.As<Napi::Number>().Int32Value() != 1)) {
      ThrowInvalidArgument(env, field + ".state", "must be 0 (NORMAL) or 1 (WAITING)");
    }
    if (!bytes.IsTypedArray() || bytes.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
      ThrowInvalidArgument(env, field + ".bytes", "must be a Uint8Array");
    }
    Napi::Uint8Array array = bytes.As<Napi::Uint8Array>();
    // The runtime's texts are NUL-terminated: a NUL inside ends the text, as it would there.
    std::string text(reinterpret_cast<const char*>(array.Data()), array.ElementLength());
    Utf8Joiner::Piece piece = joiner.Take(state.As<Napi::Number>().Int32Value() == 1, text.c_str());
    Napi::Object out = Napi::Object::New(env);
    out.Set("state", Napi::Number::New(env, piece.held ? 1 : 0));
    out.Set("text", Napi::String::New(env, piece.text));
    pieces.Set(i, out);
  }
  Napi::Object result = Napi::Object::New(env);
  result.Set("pieces", pieces);
  result.Set("rest", Napi::String::New(env, joiner.Flush()));
  return result;
}

}  // namespace

Napi::Object InitModule(Napi::Env env, Napi::Object exports) {
  auto* data = new AddonData();
  env.SetInstanceData(data);
  data->runtime_constructor = Napi::Persistent(Runtime::DefineClass(env));
  data->model_constructor = Napi::Persistent(Model::DefineClass(env));
  exports.Set("setErrorClass", Napi::Function::New(env, SetErrorClassMethod, "setErrorClass"));
  exports.Set("openRuntime", Napi::Function::New(env, OpenRuntime, "openRuntime"));
  exports.Set("joinCallbackTexts", Napi::Function::New(env, JoinCallbackTexts, "joinCallbackTexts"));
  exports.Set("setParentDeathSignal", Napi::Function::New(env, SetParentDeathSignal, "setParentDeathSignal"));
  exports.Set("exitWithoutTeardown", Napi::Function::New(env, ExitWithoutTeardown, "exitWithoutTeardown"));
  exports.Set("setThreadLimit", Napi::Function::New(env, SetThreadLimit, "setThreadLimit"));
  return exports;
}

}  // namespace rkllm_serve

// The registration macro pastes its function name into an identifier: it needs an unqualified one.
using rkllm_serve::InitModule;
NODE_API_MODULE(rkllm_serve, InitModule)
