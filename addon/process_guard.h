// Ties a model host process to the server that started it: when the server dies, even of
// SIGKILL, the kernel kills the host (Linux prctl PR_SET_PDEATHSIG), so no host outlives it.
#pragma once

#include <napi.h>

namespace rkllm_serve {

// setParentDeathSignal(): arms SIGKILL on parent death for this process; returns getppid()
// afterwards, so the caller can tell whether its parent was already gone before it was armed.
Napi::Value SetParentDeathSignal(const Napi::CallbackInfo& info);

// exitWithoutTeardown(): from now on exit(), from any thread (the runtime's own included), flushes
// stdio and ends the process at once with its status, before any atexit teardown registered
// earlier (the addon's model stop, the runtime's static destructors). A host calls it once the
// runtime is open: an exit() inside the library then ends the host promptly with its own code,
// instead of tearing Node down under its running main thread.
Napi::Value ExitWithoutTeardown(const Napi::CallbackInfo& info);

// setThreadLimit(soft): the soft RLIMIT_NPROC of this process (clamped to the hard limit). The
// server hands its own limit to a host before each call that may start a thread, so a host
// starts no thread the server itself could not.
Napi::Value SetThreadLimit(const Napi::CallbackInfo& info);

}  // namespace rkllm_serve
