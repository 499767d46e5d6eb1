// Native failures carry a stable code. Off the JS thread they are plain NativeError values (the
// sharp pattern: collect strings, throw in JS); on the JS thread they become instances of the
// RkllmError class that JavaScript registered with setErrorClass (the better-sqlite3 pattern).
#pragma once

#include <napi.h>

#include <string>

namespace rkllm_serve {

struct NativeError {
  std::string code;  // one of RKLLM_ERROR_CODES in lib/errors.ts
  std::string message;

  bool ok() const { return code.empty(); }
};

// Stores the JS error class for this environment (called once from setErrorClass).
void SetErrorClass(Napi::Env env, Napi::Function cls);

// Builds an RkllmError (or a plain Error before setErrorClass was called).
Napi::Error MakeError(Napi::Env env, const std::string& code, const std::string& message);
inline Napi::Error MakeError(Napi::Env env, const NativeError& error) {
  return MakeError(env, error.code, error.message);
}

// Throws INVALID_ARGUMENT as a C++ exception (node-addon-api turns it into a JS throw).
[[noreturn]] void ThrowInvalidArgument(Napi::Env env, const std::string& message);

}  // namespace rkllm_serve
