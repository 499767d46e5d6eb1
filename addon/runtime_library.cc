#include "runtime_library.h"

#include <dlfcn.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <cstring>
#include <vector>

#include "blob_id.h"

namespace rkllm_serve {
namespace {

// Official builds by git blob id (docs/rkllm-abi.md). `abi` empty = a release whose layout differs
// from both supported ABIs.
struct KnownBuild {
  const char* blob_id;
  const char* release;
  const char* abi;
};

constexpr KnownBuild kKnownBuilds[] = {
    {"3bb8cb6172c4c06e1c622c8f8c579888378784f4", "1.1.4 (aarch64)", ""},
    {"d45ee9b8dcb9ef27d7dd875ce3be3d5e6dfb654d", "1.2.0 (aarch64)", ""},
    {"db041c01bba5e0e8f624bb2ff50d48825dde1bfc", "1.2.1b1 (aarch64)", ""},
    {"6b9439d59f2fe4bb8ef5ee2b09c102f1bf993da9", "1.2.1 (aarch64)", "1.2"},
    {"7025f35825e04ad75d839d10392e3c02cc88e57a", "1.2.1 (armhf)", "1.2"},
    {"8ed9cca16f8d5ad8f7cdd7d393de6561182b3395", "1.2.2 (aarch64)", "1.2"},
    {"d5953fdad6e60521f1dc696f6d638425c93ba08d", "1.2.2 (armhf)", "1.2"},
    {"0084abc34ab43359cfa9fd5d4c92ece34127dbd0", "1.2.3 (aarch64)", "1.2"},
    {"fe1ca6849603a770c54f82d26b826a120c79a01a", "1.2.3 (armhf)", "1.2"},
    {"34167b32f99cb7ab19e21fb579fb750d96b878f1", "1.3.0 (aarch64)", "1.3"},
    {"17c9063b46168c4e7d093d6fedb097874f92d076", "1.3.0 (armhf)", "1.3"},
};

std::optional<Abi> ParseAbi(const char* text) {
  if (text == nullptr) return std::nullopt;
  if (std::strcmp(text, "1.2") == 0) return Abi::k12;
  if (std::strcmp(text, "1.3") == 0) return Abi::k13;
  return std::nullopt;
}

bool FileExists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

// The file the loader actually mapped (it searched for it when given a bare name).
std::string LoadedFilePath(void* library, const std::string& fallback) {
  void* symbol = dlsym(library, "rkllm_init");
  Dl_info where{};
  if (symbol != nullptr && dladdr(symbol, &where) != 0 && where.dli_fname != nullptr) {
    char resolved[PATH_MAX];
    if (realpath(where.dli_fname, resolved) != nullptr) return resolved;
    return where.dli_fname;
  }
  return fallback;
}

const char* kHowToChoose =
    "Choose the ABI explicitly: '1.2' for releases 1.2.1 to 1.2.3, '1.3' for release 1.3.0 "
    "(the server's --runtime-abi option).";

}  // namespace

std::shared_ptr<RuntimeLibrary> RuntimeLibrary::Open(const std::string& path, std::optional<Abi> explicit_abi,
                                                     rkllm::ResultCallback callback, NativeError& error) {
  const bool is_bare_name = path.find('/') == std::string::npos;
  if (!is_bare_name && !FileExists(path)) {
    error = {"RUNTIME_NOT_FOUND", "No RKLLM runtime library at " + path + "."};
    return nullptr;
  }
  // RTLD_LOCAL keeps the runtime's symbols out of the global namespace, so two libraries (real
  // and emulated, or two ABIs) can be open in one process.
  void* library = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (library == nullptr) {
    const char* reason = dlerror();
    std::string why = reason != nullptr ? reason : "unknown reason";
    if (is_bare_name) {
      error = {"RUNTIME_NOT_FOUND", "The dynamic loader found no " + path + " (" + why +
                                        "). Install librkllmrt (see docs/install.md) or give its path."};
    } else {
      error = {"RUNTIME_LOAD_FAILED", "dlopen could not load " + path + ": " + why};
    }
    return nullptr;
  }

  // A library that lacks any of the 15 functions is not a runtime, whatever its ABI.
  std::string missing_names;
  for (const char* name : rkllm::kFunctionNames) {
    if (dlsym(library, name) == nullptr) missing_names += (missing_names.empty() ? "" : ", ") + std::string(name);
  }
  if (!missing_names.empty()) {
    error = {"RUNTIME_SYMBOL_MISSING", LoadedFilePath(library, path) + " does not export " + missing_names +
                                           ": it is not a complete RKLLM runtime."};
    dlclose(library);
    return nullptr;
  }

  auto runtime = std::shared_ptr<RuntimeLibrary>(new RuntimeLibrary());
  RuntimeInfo& info = runtime->info_;
  info.path = LoadedFilePath(library, path);

  // Which ABI: explicit setting, then the emulated runtime's marker, then known official builds.
  auto marker = reinterpret_cast<rkllm::EmulatedAbiFn>(dlsym(library, rkllm::kEmulatedAbiSymbol));
  std::optional<Abi> declared = marker != nullptr ? ParseAbi(marker()) : std::nullopt;
  info.emulated = marker != nullptr;
  if (explicit_abi) {
    if (declared && *declared != *explicit_abi) {
      error = {"RUNTIME_ABI_MISMATCH", info.path + " is the emulated runtime for ABI " + AbiName(*declared) +
                                           ", but ABI " + AbiName(*explicit_abi) + " was asked for."};
      dlclose(library);
      return nullptr;
    }
    info.abi = *explicit_abi;
    info.abi_source = "explicit";
  } else if (declared) {
    info.abi = *declared;
    info.abi_source = "emulated-marker";
  } else {
    std::string blob_id = GitBlobIdOfFile(info.path);
    const KnownBuild* match = nullptr;
    for (const KnownBuild& build : kKnownBuilds) {
      if (blob_id == build.blob_id) match = &build;
    }
    if (match == nullptr) {
      error = {"RUNTIME_ABI_UNKNOWN", "Cannot tell the ABI of " + info.path + " (git blob id " +
                                          (blob_id.empty() ? std::string("unreadable") : blob_id) +
                                          " is not a known official build). " + kHowToChoose};
      dlclose(library);
      return nullptr;
    }
    if (*match->abi == '\0') {
      error = {"RUNTIME_ABI_UNSUPPORTED", info.path + " is librkllmrt " + match->release +
                                              ", whose ABI is not supported. Install release 1.2.1 to 1.2.3 or 1.3.0."};
      dlclose(library);
      return nullptr;
    }
    info.abi = *ParseAbi(match->abi);
    info.abi_source = "blob-id";
    info.release = match->release;
  }

  std::vector<std::string> missing;
  runtime->api_ = MakeRuntimeApi(info.abi, library, callback, missing);
  return runtime;
}

}  // namespace rkllm_serve
