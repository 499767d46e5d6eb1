#include "emulator/log.h"

#include <unistd.h>

#include <cstdarg>
#include <cstdio>

namespace emu {

namespace {

void write_line(int fd, const char* prefix, size_t prefix_length, const char* format, va_list args) {
  char line[1024];
  size_t used = prefix_length;
  __builtin_memcpy(line, prefix, used);
  int written = std::vsnprintf(line + used, sizeof(line) - used - 1, format, args);
  if (written < 0) written = 0;
  used += static_cast<size_t>(written) < sizeof(line) - used - 1 ? static_cast<size_t>(written)
                                                                  : sizeof(line) - used - 2;
  line[used++] = '\n';
  // A short or failed write to stdout or stderr has no one to report to.
  ssize_t ignored = ::write(fd, line, used);
  (void)ignored;
}

}  // namespace

void log_line(const char* format, ...) {
  static const char kPrefix[] = "[rkllm-emulated] ";
  va_list args;
  va_start(args, format);
  write_line(STDERR_FILENO, kPrefix, sizeof(kPrefix) - 1, format, args);
  va_end(args);
}

void runtime_log(char level, const char* format, ...) {
  char prefix[] = "? rkllm: ";
  prefix[0] = level;
  va_list args;
  va_start(args, format);
  write_line(level == 'I' ? STDOUT_FILENO : STDERR_FILENO, prefix, sizeof(prefix) - 1, format, args);
  va_end(args);
}

}  // namespace emu
