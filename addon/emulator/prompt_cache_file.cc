#include "emulator/prompt_cache_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>

namespace emu {

namespace {

constexpr char kMagicLine[] = "RKLLM-EMULATED-PROMPT-CACHE 1";
constexpr int kVersion = 2;
// No emulated context is larger than this; a larger count means a damaged file.
constexpr uint64_t kMaxTokens = 1ull << 24;
// Longest header line read (a model name is cut to fit when written).
constexpr size_t kMaxLine = 512;
constexpr size_t kMaxNameBytes = 256;

// Opened without blocking (a FIFO put at the path must not hang the call), then read buffered.
class InputFile {
 public:
  explicit InputFile(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return;
    file_ = ::fdopen(fd, "rb");
    if (!file_) ::close(fd);
  }
  ~InputFile() {
    if (file_) std::fclose(file_);
  }
  InputFile(const InputFile&) = delete;
  InputFile& operator=(const InputFile&) = delete;
  std::FILE* get() const { return file_; }

 private:
  std::FILE* file_ = nullptr;
};

// One line without its '\n'; false at EOF, or when no '\n' comes within kMaxLine bytes.
bool read_line(std::FILE* file, std::string* line) {
  line->clear();
  for (int c = std::getc(file); c != EOF; c = std::getc(file)) {
    if (c == '\n') return true;
    if (line->size() >= kMaxLine) return false;
    line->push_back(static_cast<char>(c));
  }
  return false;
}

// "<key> <value>": the value, when the line starts with the key and one space.
bool value_of(const std::string& line, const char* key, std::string* value) {
  size_t length = std::strlen(key);
  if (line.size() <= length + 1 || line.compare(0, length, key) != 0 || line[length] != ' ') return false;
  *value = line.substr(length + 1);
  return true;
}

// A plain decimal (no sign, no spaces, no leading zeros but "0") up to max.
bool parse_decimal(const std::string& text, uint64_t max, uint64_t* out) {
  if (text.empty() || text.size() > 20 || (text.size() > 1 && text[0] == '0')) return false;
  uint64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    uint64_t digit = static_cast<uint64_t>(c - '0');
    if (value > (max - digit) / 10) return false;
    value = value * 10 + digit;
  }
  *out = value;
  return true;
}

bool parse_hex64(const std::string& text, uint64_t* out) {
  if (text.size() != 16) return false;
  uint64_t value = 0;
  for (char c : text) {
    int digit = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (digit < 0) return false;
    value = (value << 4) | static_cast<uint64_t>(digit);
  }
  *out = value;
  return true;
}

std::string hex64(uint64_t value) {
  char text[17];
  std::snprintf(text, sizeof(text), "%016" PRIx64, value);
  return text;
}

// The name as one header line: control bytes would break the line structure.
std::string header_safe(const std::string& name) {
  std::string safe = name.substr(0, kMaxNameBytes);
  for (char& c : safe) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  }
  return safe.empty() ? "?" : safe;
}

bool write_all(int fd, const std::string& bytes) {
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

}  // namespace

bool write_prompt_cache(const std::string& path, const PromptCacheOwner& owner, const std::vector<int32_t>& ids,
                        uint64_t kv_bytes_present, std::string* error) {
  std::string text = std::string(kMagicLine) + "\nversion " + std::to_string(kVersion) + "\nmodel " +
                     header_safe(owner.name) + "\nfingerprint " + hex64(owner.fingerprint) +
                     "\nkv_bytes_per_token " + std::to_string(owner.kv_bytes_per_token) + "\ntokens " +
                     std::to_string(ids.size()) + "\n";
  text.reserve(text.size() + ids.size() * 8 + 1);
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i) text.push_back(' ');
    text += std::to_string(ids[i]);
  }
  text.push_back('\n');
  const uint64_t full = static_cast<uint64_t>(ids.size()) * static_cast<uint64_t>(owner.kv_bytes_per_token);
  const uint64_t size = text.size() + (kv_bytes_present < full ? kv_bytes_present : full);

  // O_NONBLOCK: a FIFO with no reader at the path fails at once instead of holding the run's thread.
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NONBLOCK, 0666);
  if (fd < 0) {
    *error = "cannot write prompt cache '" + path + "': " + std::strerror(errno);
    return false;
  }
  // The KV bytes are a hole: the size is real, the blocks are not written.
  bool ok = write_all(fd, text) && ::ftruncate(fd, static_cast<off_t>(size)) == 0;
  int saved_errno = errno;
  if (::close(fd) != 0 && ok) {
    ok = false;
    saved_errno = errno;
  }
  if (!ok) {
    *error = "cannot write prompt cache '" + path + "': " + std::strerror(saved_errno);
    return false;
  }
  return true;
}

bool read_prompt_cache(const std::string& path, const PromptCacheOwner& owner, std::vector<int32_t>* ids,
                       std::string* error) {
  InputFile file(path);
  if (!file.get()) {
    *error = "cannot open prompt cache '" + path + "': " + std::strerror(errno);
    return false;
  }
  struct stat info;
  if (::fstat(::fileno(file.get()), &info) != 0 || !S_ISREG(info.st_mode)) {
    *error = "prompt cache '" + path + "' is not a regular file";
    return false;
  }
  const std::string quoted = "prompt cache '" + path + "'";
  std::string line, value;
  if (!read_line(file.get(), &line) || line != kMagicLine) {
    *error = "'" + path + "' is not an emulated prompt cache file";
    return false;
  }
  if (!read_line(file.get(), &line)) {
    *error = quoted + " is truncated (no version line)";
    return false;
  }
  if (value_of(line, "tokens", &value)) {
    *error = quoted + " is version 1, which names no model: it is refused, save it again";
    return false;
  }
  if (line != "version " + std::to_string(kVersion)) {
    *error = quoted + " has version line '" + line.substr(0, 40) + "'; this runtime reads version " +
             std::to_string(kVersion);
    return false;
  }
  auto damaged = [&](const char* what) {
    *error = quoted + " has a damaged header: " + what;
    return false;
  };
  std::string saved_by;
  uint64_t fingerprint = 0, kv_bytes = 0, count = 0;
  if (!read_line(file.get(), &line) || !value_of(line, "model", &saved_by)) return damaged("no 'model' line");
  if (!read_line(file.get(), &line) || !value_of(line, "fingerprint", &value) || !parse_hex64(value, &fingerprint)) {
    return damaged("no valid 'fingerprint' line");
  }
  if (fingerprint != owner.fingerprint || saved_by != header_safe(owner.name)) {
    *error = "prompt cache was saved by model " + saved_by + " (fingerprint " + hex64(fingerprint) +
             "), not by this model " + header_safe(owner.name) + " (fingerprint " + hex64(owner.fingerprint) +
             "): " + quoted;
    return false;
  }
  if (!read_line(file.get(), &line) || !value_of(line, "kv_bytes_per_token", &value) ||
      !parse_decimal(value, 1ull << 30, &kv_bytes)) {
    return damaged("no valid 'kv_bytes_per_token' line");
  }
  if (kv_bytes != static_cast<uint64_t>(owner.kv_bytes_per_token)) {
    return damaged("kv_bytes_per_token differs from the model's");
  }
  if (!read_line(file.get(), &line) || !value_of(line, "tokens", &value) || !parse_decimal(value, kMaxTokens, &count)) {
    return damaged("no valid 'tokens' line (a count up to 16777216)");
  }

  std::vector<int32_t> loaded;
  loaded.reserve(static_cast<size_t>(count));
  // The ids line: count decimals separated by single spaces, then '\n'.
  int c = std::getc(file.get());
  for (uint64_t i = 0; i < count; ++i) {
    if (i > 0) {
      if (c != ' ') break;
      c = std::getc(file.get());
    }
    uint64_t id = 0;
    int digits = 0;
    while (c >= '0' && c <= '9' && digits < 10) {
      id = id * 10 + static_cast<uint64_t>(c - '0');
      ++digits;
      c = std::getc(file.get());
    }
    if (digits == 0) break;
    if (id >= static_cast<uint64_t>(owner.vocab_size)) {
      *error = quoted + " holds token id " + std::to_string(id) + " at position " + std::to_string(i) +
               ", outside the vocabulary [0, " + std::to_string(owner.vocab_size) + ")";
      return false;
    }
    loaded.push_back(static_cast<int32_t>(id));
  }
  if (loaded.size() != count || c != '\n') {
    *error = quoted + " is truncated or damaged: the header says " + std::to_string(count) +
             " token ids, the file holds " + std::to_string(loaded.size()) + (c == '\n' ? "" : " and then other bytes");
    return false;
  }
  long header_end = std::ftell(file.get());
  const uint64_t expected = static_cast<uint64_t>(header_end) + count * kv_bytes;
  const uint64_t actual = static_cast<uint64_t>(info.st_size);
  if (header_end < 0 || actual != expected) {
    *error = quoted + " is " + (actual < expected ? "truncated" : "longer than its header says") + ": " +
             std::to_string(actual) + " bytes, the header says " + std::to_string(expected);
    return false;
  }
  *ids = std::move(loaded);
  return true;
}

}  // namespace emu
