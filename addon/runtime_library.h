// One opened librkllmrt (real or emulated): the dlopen handle, the 15 resolved functions and the
// ABI they speak. Opening does file I/O (reading the ELF header, dlopen, hashing the file, reading
// its version banner), so it runs off the JS thread.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "errors.h"
#include "runtime_api.h"

namespace rkllm_serve {

// An ABI as a caller names it: an ABI ('1.2', '1.3', '1.3.1') or a release number ('1.2.1' to
// '1.2.3', '1.3.0', '1.3.1').
struct AbiRequest {
  Abi abi = Abi::k13;
  std::string release;       // when a release number was given
  bool any_13_release = false;  // '1.3': some 1.3.x, its release to be read from the file if it can
};
std::optional<AbiRequest> ParseAbiRequest(const std::string& name);

struct RuntimeInfo {
  std::string path;        // the file the loader opened
  Abi abi = Abi::k13;
  std::string abi_source;  // "explicit" | "emulated-marker" | "blob-id" | "version-string"
  bool emulated = false;
  std::string release;     // the release, when known (from the request, a blob id or the version banner)
  std::string note;        // how an ABI '1.3' request was settled, when that took a look at the file
};

class RuntimeLibrary {
 public:
  // `path` is a file path or a bare name for the dynamic loader's search.
  static std::shared_ptr<RuntimeLibrary> Open(const std::string& path, std::optional<AbiRequest> request,
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
