#include "errors.h"

#include "addon_data.h"

namespace rkllm_serve {

NativeError CallError(std::string code, std::string message, std::string fn, int return_code) {
  NativeError error(std::move(code), std::move(message));
  error.fn = std::move(fn);
  error.return_code = return_code;
  return error;
}

void SetErrorClass(Napi::Env env, Napi::Function cls) {
  AddonData::From(env).error_class = Napi::Persistent(cls);
}

namespace {

// Only the fields that apply, named as RkllmErrorDetails names them.
void SetDetails(Napi::Object target, const NativeError& error) {
  if (!error.field.empty()) target.Set("field", error.field);
  if (!error.reason.empty()) target.Set("reason", error.reason);
  if (!error.fn.empty()) target.Set("fn", error.fn);
  if (error.return_code) target.Set("returnCode", *error.return_code);
}

}  // namespace

Napi::Error MakeError(Napi::Env env, const NativeError& error) {
  Napi::FunctionReference& cls = AddonData::From(env).error_class;
  if (cls.IsEmpty()) {
    Napi::Error plain = Napi::Error::New(env, error.message);
    plain.Set("code", Napi::String::New(env, error.code));
    SetDetails(plain.Value(), error);
    return plain;
  }
  Napi::Object details = Napi::Object::New(env);
  SetDetails(details, error);
  Napi::Object instance = cls.New({Napi::String::New(env, error.message), Napi::String::New(env, error.code), details});
  return Napi::Error(env, instance);
}

Napi::Error MakeError(Napi::Env env, const std::string& code, const std::string& message) {
  return MakeError(env, NativeError(code, message));
}

void ThrowInvalidArgument(Napi::Env env, const std::string& field, const std::string& reason) {
  NativeError error("INVALID_ARGUMENT", field + " " + reason);
  error.field = field;
  error.reason = reason;
  throw MakeError(env, error);
}

}  // namespace rkllm_serve
