#include "process_guard.h"

#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "errors.h"

namespace rkllm_serve {

Napi::Value SetParentDeathSignal(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  // The signal fires when the thread that forked us exits; libuv spawns from Node's main thread,
  // which lives as long as the server process does.
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) {
    Napi::Error::New(env, std::string("prctl(PR_SET_PDEATHSIG) failed: ") + std::strerror(errno)).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return Napi::Number::New(env, static_cast<double>(::getppid()));
}

namespace {

void ExitAtOnce(int status, void*) {
  std::fflush(nullptr);
  ::_exit(status);
}

}  // namespace

Napi::Value ExitWithoutTeardown(const Napi::CallbackInfo& info) {
  // on_exit (glibc) hands the handler the exit status; handlers run in reverse order of
  // registration, so this one, registered last, runs first.
  if (::on_exit(&ExitAtOnce, nullptr) != 0) {
    Napi::Error::New(info.Env(), "on_exit failed").ThrowAsJavaScriptException();
  }
  return info.Env().Undefined();
}

Napi::Value SetThreadLimit(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber() || info[0].As<Napi::Number>().DoubleValue() < 0) {
    ThrowInvalidArgument(env, "soft", "must be a number >= 0");
  }
  struct rlimit limit {};
  if (::getrlimit(RLIMIT_NPROC, &limit) != 0) return Napi::Boolean::New(env, false);
  const double wanted = info[0].As<Napi::Number>().DoubleValue();
  const rlim_t soft = wanted >= static_cast<double>(limit.rlim_max) ? limit.rlim_max : static_cast<rlim_t>(wanted);
  if (soft == limit.rlim_cur) return Napi::Boolean::New(env, true);
  limit.rlim_cur = soft;
  return Napi::Boolean::New(env, ::setrlimit(RLIMIT_NPROC, &limit) == 0);
}

}  // namespace rkllm_serve
