// One-line diagnostics on stderr. stdout belongs to the server's protocol, so nothing here ever
// writes there.
#pragma once

namespace emu {

// Prints "[rkllm-emulated] <message>\n" as a single write so lines from threads do not interleave.
void log_line(const char* format, ...) __attribute__((format(printf, 1, 2)));

}  // namespace emu
