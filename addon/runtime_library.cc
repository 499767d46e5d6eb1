#include "runtime_library.h"

#include <dlfcn.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <vector>

#include "blob_id.h"
#include "elf_file.h"

namespace rkllm_serve {
namespace {

// Official builds by git blob id (docs/rkllm-abi.md). `abi` empty = a release whose layout differs
// from every supported ABI. No blob id of 1.3.1 is known yet: its version banner tells it.
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

// Release numbers with a supported layout, as --runtime-abi and the version banner write them.
struct KnownRelease {
  const char* release;
  Abi abi;
};
constexpr KnownRelease kSupportedReleases[] = {
    {"1.2.1", Abi::k12}, {"1.2.2", Abi::k12}, {"1.2.3", Abi::k12}, {"1.3.0", Abi::k13}, {"1.3.1", Abi::k131},
};

// The release's own layout is known to differ from every supported one (1.0.x, 1.1.x, 1.2.0 and
// the 1.2.1 beta); a release that is neither this nor supported is simply unknown.
bool IsOlderRelease(const std::string& release) {
  return release.rfind("0.", 0) == 0 || release.rfind("1.0.", 0) == 0 || release.rfind("1.1.", 0) == 0 ||
         release == "1.2.0" || release.rfind("1.2.1b", 0) == 0;
}

std::optional<Abi> SupportedReleaseAbi(const std::string& release) {
  for (const KnownRelease& known : kSupportedReleases) {
    if (release == known.release) return known.abi;
  }
  return std::nullopt;
}

// The exact ABI names: what the emulated runtime's marker and the blob table say.
std::optional<Abi> ParseAbiName(const char* text) {
  if (text == nullptr) return std::nullopt;
  if (std::strcmp(text, "1.2") == 0) return Abi::k12;
  if (std::strcmp(text, "1.3") == 0) return Abi::k13;
  if (std::strcmp(text, "1.3.1") == 0) return Abi::k131;
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

// At init the real runtime prints "I rkllm: rkllm-runtime version: 1.3.0, rknpu driver version:
// 0.9.8, platform: RK3588" (docs/rkllm-abi.md, "How the real runtime behaves"). When the release
// number is part of that string literal, it sits in the library's .rodata and can be read without
// running anything (and without a board); when the literal has a "%s" there instead, the release
// is not in the banner and this finds nothing.
constexpr char kVersionBanner[] = "rkllm-runtime version: ";
constexpr uint64_t kMaxRodataBytes = 64ull << 20;

std::string VersionInBanner(const std::string& path) {
  std::optional<ElfFile> elf = ElfFile::Open(path);
  if (!elf) return "";
  std::optional<std::string> rodata = elf->ReadSection(".rodata", kMaxRodataBytes);
  if (!rodata) return "";
  for (size_t at = rodata->find(kVersionBanner); at != std::string::npos; at = rodata->find(kVersionBanner, at + 1)) {
    size_t start = at + sizeof(kVersionBanner) - 1, end = start;
    while (end < rodata->size() && (std::isalnum(static_cast<unsigned char>((*rodata)[end])) || (*rodata)[end] == '.')) ++end;
    std::string version = rodata->substr(start, end - start);
    // A release number: digits first, two dots at least ("1.3.1", "1.2.1b1").
    if (!version.empty() && std::isdigit(static_cast<unsigned char>(version[0])) &&
        std::count(version.begin(), version.end(), '.') >= 2) {
      return version;
    }
  }
  return "";
}

// What the file itself says it is: a known build by blob id, else the release in its banner.
struct FileIdentity {
  std::string source;   // "blob-id", "version-string", or empty when neither told anything
  std::string release;  // "1.3.0 (aarch64)" by blob id, "1.3.1" by banner
  std::optional<Abi> abi;  // set for a supported release
  bool older = false;      // a known release whose layout is not supported
  std::string blob_id;
};

FileIdentity Identify(const std::string& path) {
  FileIdentity identity;
  identity.blob_id = GitBlobIdOfFile(path);
  for (const KnownBuild& build : kKnownBuilds) {
    if (identity.blob_id != build.blob_id) continue;
    identity.source = "blob-id";
    identity.release = build.release;
    identity.abi = ParseAbiName(build.abi);
    identity.older = !identity.abi;
    return identity;
  }
  std::string version = VersionInBanner(path);
  if (!version.empty()) {
    identity.source = "version-string";
    identity.release = version;
    identity.abi = SupportedReleaseAbi(version);
    identity.older = IsOlderRelease(version);
  }
  return identity;
}

std::string HowIdentified(const FileIdentity& identity) {
  return identity.source == "blob-id" ? "by its git blob id" : "by the version banner in its .rodata";
}

const char* kHowToChoose =
    "Choose the ABI explicitly (the server's --runtime-abi option): the library's release number ('1.2.1', "
    "'1.2.2', '1.2.3', '1.3.0' or '1.3.1'), or '1.2' for any of releases 1.2.1 to 1.2.3, or '1.3' for a 1.3.x "
    "whose release is not known (it is then given the 1.3.1 input layout with no audio, which a 1.3.0 library "
    "reads only the front of).";

const char* kSupported = "Install release 1.2.1, 1.2.2, 1.2.3, 1.3.0 or 1.3.1.";

}  // namespace

std::optional<AbiRequest> ParseAbiRequest(const std::string& name) {
  AbiRequest request;
  if (name == "1.2") {
    request.abi = Abi::k12;
  } else if (name == "1.3") {
    request.abi = Abi::k13;
    request.any_13_release = true;
  } else if (std::optional<Abi> abi = SupportedReleaseAbi(name)) {
    request.abi = *abi;
    request.release = name;
  } else {
    return std::nullopt;
  }
  return request;
}

std::shared_ptr<RuntimeLibrary> RuntimeLibrary::Open(const std::string& path, std::optional<AbiRequest> request,
                                                     rkllm::ResultCallback callback, NativeError& error) {
  const bool is_bare_name = path.find('/') == std::string::npos;
  if (!is_bare_name && !FileExists(path)) {
    error = {"RUNTIME_NOT_FOUND", "No RKLLM runtime library at " + path + "."};
    return nullptr;
  }
  // glibc's dlopen reports a library for another machine as "No such file or directory": the ELF
  // header says what it is for. (A bare name is searched for by the loader, which skips such
  // files; there is no one file to check.)
  if (!is_bare_name) {
    std::optional<ElfFile> elf = ElfFile::Open(path);
    if (elf && !elf->MatchesHost()) {
      error = {"RUNTIME_WRONG_ARCHITECTURE",
               path + ": this librkllmrt is for " + elf->Describe() + "; this machine is " + ElfFile::DescribeHost() +
                   ". Use the build of librkllmrt for this machine (Rockchip ships aarch64 and armhf builds, for its "
                   "boards only); anywhere else, use the emulated runtime ('sim')."};
      return nullptr;
    }
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
  auto refuse = [&](const char* code, const std::string& message) {
    error = {code, message};
    dlclose(library);
    return nullptr;
  };

  // Which ABI: the explicit request, then the emulated runtime's marker, then known official
  // builds by blob id, then the release in the version banner (docs/rkllm-abi.md, "Telling the ABI").
  auto marker = reinterpret_cast<rkllm::EmulatedAbiFn>(dlsym(library, rkllm::kEmulatedAbiSymbol));
  // The marker's ABI as a plain value and a flag: GCC 12 warns (-Wmaybe-uninitialized) on an
  // optional read inside the branches below, though each read is behind the check.
  Abi declared_abi = Abi::k12;
  bool has_declared = false;
  if (marker != nullptr) {
    if (const std::optional<Abi> parsed = ParseAbiName(marker())) {
      declared_abi = *parsed;
      has_declared = true;
    }
  }
  info.emulated = marker != nullptr;
  if (request) {
    const std::string asked = request->release.empty() ? AbiName(request->abi) : request->release;
    info.abi_source = "explicit";
    if (has_declared) {
      const bool agrees = request->any_13_release ? declared_abi != Abi::k12 : declared_abi == request->abi;
      if (!agrees) {
        return refuse("RUNTIME_ABI_MISMATCH", info.path + " is the emulated runtime for ABI " + AbiName(declared_abi) +
                                                  ", but ABI " + asked + " was asked for.");
      }
      info.abi = declared_abi;
      info.release = request->release;
      if (request->any_13_release && declared_abi != Abi::k13) {
        info.note = std::string("ABI '1.3' settled as ") + AbiName(declared_abi) + " by the emulated runtime's marker.";
      }
    } else if (request->any_13_release) {
      // Some 1.3.x: the file may say which.
      FileIdentity identity = Identify(info.path);
      if (identity.abi && *identity.abi != Abi::k12) {
        info.abi = *identity.abi;
        info.release = identity.release;
        info.note = std::string("ABI '1.3' settled as ") + AbiName(info.abi) + ": the file is librkllmrt " +
                    identity.release + " " + HowIdentified(identity) + ".";
      } else if (identity.abi || identity.older) {
        return refuse("RUNTIME_ABI_MISMATCH", info.path + " is librkllmrt " + identity.release + " " +
                                                  HowIdentified(identity) + ", not a 1.3.x, but ABI 1.3 was asked for.");
      } else {
        info.abi = Abi::k13;
        info.note = "The release of this 1.3.x library was not told apart (" +
                    (identity.source.empty() ? std::string("no known blob id, no release number in a version banner")
                                             : "its version banner says " + identity.release + ", a release this server does not know") +
                    "): it is given the 1.3.1 input layout with the audio block zeroed, which a 1.3.0 library reads only "
                    "the front of, and audio input is refused. If it is 1.3.1, choose ABI '1.3.1'.";
      }
    } else {
      info.abi = request->abi;
      info.release = request->release;
    }
  } else if (has_declared) {
    info.abi = declared_abi;
    info.abi_source = "emulated-marker";
  } else {
    FileIdentity identity = Identify(info.path);
    if (identity.source.empty()) {
      return refuse("RUNTIME_ABI_UNKNOWN", "Cannot tell the ABI of " + info.path + " (git blob id " +
                                               (identity.blob_id.empty() ? std::string("unreadable") : identity.blob_id) +
                                               " is not a known official build, and no release number was found in "
                                               "a version banner). " + kHowToChoose);
    }
    if (!identity.abi) {
      const char* what = identity.older ? ": its ABI is not supported. " : ": a release whose layout this server does not know. ";
      return refuse("RUNTIME_ABI_UNSUPPORTED", info.path + " is librkllmrt " + identity.release + " " +
                                                   HowIdentified(identity) + what + kSupported);
    }
    info.abi = *identity.abi;
    info.abi_source = identity.source;
    info.release = identity.release;
  }

  std::vector<std::string> missing;
  runtime->api_ = MakeRuntimeApi(info.abi, library, callback, missing);
  return runtime;
}

}  // namespace rkllm_serve
