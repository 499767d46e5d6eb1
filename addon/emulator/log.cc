#include "emulator/log.h"

#include <unistd.h>

#include <cstdarg>
#include <cstdio>

namespace emu {

void log_line(const char* format, ...) {
  static const char kPrefix[] = "[rkllm-emulated] ";
  char line[1024];
  size_t used = sizeof(kPrefix) - 1;
  __builtin_memcpy(line, kPrefix, used);
  va_list args;
  va_start(args, format);
  int written = std::vsnprintf(line + used, sizeof(line) - used - 1, format, args);
  va_end(args);
  if (written < 0) written = 0;
  used += static_cast<size_t>(written) < sizeof(line) - used - 1 ? static_cast<size_t>(written)
                                                                  : sizeof(line) - used - 2;
  line[used++] = '\n';
  // A short or failed write to stderr has no one to report to.
  ssize_t ignored = ::write(STDERR_FILENO, line, used);
  (void)ignored;
}

}  // namespace emu
