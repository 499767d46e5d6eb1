// Native failures carry a stable code. Off the JS thread they are plain NativeError values (the
// sharp pattern: collect strings, throw in JS); on the JS thread they become instances of the
// RkllmError class that JavaScript registered with setErrorClass (the better-sqlite3 pattern),
// with the structured fields of lib/errors.ts (RkllmErrorDetails) that apply.
#pragma once

#include <napi.h>

#include <optional>
#include <string>
#include <utility>

namespace rkllm_serve {

struct NativeError {
  NativeError() = default;
  NativeError(std::string code, std::string message) : code(std::move(code)), message(std::move(message)) {}

  std::string code;  // one of RKLLM_ERROR_CODES in lib/errors.ts
  std::string message;
  // INVALID_ARGUMENT: the argument at fault, rooted at the C API's name for it
  // ("rkllm_input.token_input"), and what is wrong with it; the message reads "field reason".
  std::string field;
  std::string reason;
  // When an RKLLM function was called and failed: its name and what it returned.
  std::string fn;
  std::optional<int> return_code;

  bool ok() const { return code.empty(); }
};

// A failure of the RKLLM function `fn`, which returned `return_code`.
NativeError CallError(std::string code, std::string message, std::string fn, int return_code);

// Stores the JS error class for this environment (called once from setErrorClass).
void SetErrorClass(Napi::Env env, Napi::Function cls);

// Builds an RkllmError (or a plain Error carrying the same fields before setErrorClass was called).
Napi::Error MakeError(Napi::Env env, const NativeError& error);
Napi::Error MakeError(Napi::Env env, const std::string& code, const std::string& message);

// Throws INVALID_ARGUMENT as a C++ exception (node-addon-api turns it into a JS throw), with the
// message "field reason".
[[noreturn]] void ThrowInvalidArgument(Napi::Env env, const std::string& field, const std::string& reason);

}  // namespace rkllm_serve
