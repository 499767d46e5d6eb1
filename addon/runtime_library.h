// One opened librkllmrt (real or emulated): the dlopen handle, the 15 resolved functions and the
// ABI they speak. Opening does file I/O (dlopen, hashing the file), so it runs off the JS thread.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "errors.h"
#include "runtime_api.h"

namespace rkllm_serve {

struct RuntimeInfo {
  std::string path;        // the file the loader opened
  Abi abi = Abi::k13;
  std::string abi_source;  // "explicit" | "emulated-marker" | "blob-id"
  bool emulated = false;
  std::string release;     // the official release, when matched by blob id
};

class RuntimeLibrary {
 public:
  // `path` is a file path or a bare name for the dynamic loader's search.
  static std::shared_ptr<RuntimeLibrary> Open(const std::string& path, std::optional<Abi> explicit_abi,
                                              rkllm::ResultCallback callback, NativeError& error);

  const RuntimeInfo& info() const { return info_; }
  const RuntimeApi& api() const { return *api_; }

  // The library stays loaded for the life of the process once opened: the real runtime keeps
  // threads of its own, and unloading code they may still run is not worth the risk.
  ~RuntimeLibrary() = default;

 private:
  RuntimeInfo info_;
  std::unique_ptr<RuntimeApi> api_;
};

}  // namespace rkllm_serve
