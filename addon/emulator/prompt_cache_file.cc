#include "emulator/prompt_cache_file.h"

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace emu {

namespace {

constexpr char kMagicLine[] = "RKLLM-EMULATED-PROMPT-CACHE 1";
// No emulated context is larger than this; a larger count means a damaged file.
constexpr unsigned long kMaxTokens = 1ul << 24;

class File {
 public:
  File(const std::string& path, const char* mode) : file_(std::fopen(path.c_str(), mode)) {}
  ~File() {
    if (file_) std::fclose(file_);
  }
  std::FILE* get() const { return file_; }
  // Closes now so write errors that only show at flush time are seen.
  bool close() {
    std::FILE* f = file_;
    file_ = nullptr;
    return f && std::fclose(f) == 0;
  }

 private:
  std::FILE* file_;
};

}  // namespace

bool write_prompt_cache(const std::string& path, const std::vector<int32_t>& ids, std::string* error) {
  File file(path, "wb");
  if (!file.get()) {
    *error = "cannot write prompt cache '" + path + "': " + std::strerror(errno);
    return false;
  }
  bool ok = std::fprintf(file.get(), "%s\ntokens %zu\n", kMagicLine, ids.size()) > 0;
  for (size_t i = 0; ok && i < ids.size(); ++i) {
    ok = std::fprintf(file.get(), i ? " %d" : "%d", ids[i]) > 0;
  }
  ok = ok && std::fputc('\n', file.get()) != EOF;
  if (!file.close() || !ok) {
    *error = "cannot write prompt cache '" + path + "'";
    return false;
  }
  return true;
}

bool read_prompt_cache(const std::string& path, std::vector<int32_t>* ids, std::string* error) {
  File file(path, "rb");
  if (!file.get()) {
    *error = "cannot open prompt cache '" + path + "': " + std::strerror(errno);
    return false;
  }
  char magic[sizeof(kMagicLine) + 1] = {};
  unsigned long count = 0;
  if (!std::fgets(magic, sizeof(magic), file.get()) ||
      std::strncmp(magic, kMagicLine, sizeof(kMagicLine) - 1) != 0 ||
      magic[sizeof(kMagicLine) - 1] != '\n' ||
      std::fscanf(file.get(), "tokens %lu", &count) != 1 || count > kMaxTokens) {
    *error = "'" + path + "' is not an emulated prompt cache file";
    return false;
  }
  std::vector<int32_t> loaded;
  loaded.reserve(count);
  for (unsigned long i = 0; i < count; ++i) {
    int id = 0;
    if (std::fscanf(file.get(), "%d", &id) != 1 || id < 0) {
      *error = "prompt cache '" + path + "' is truncated or damaged";
      return false;
    }
    loaded.push_back(id);
  }
  *ids = std::move(loaded);
  return true;
}

}  // namespace emu
