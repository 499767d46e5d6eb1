// One-line diagnostics. log_line is the emulator's own voice, on stderr. runtime_log imitates the
// lines the real librkllmrt prints by itself ("I rkllm: ...", "W rkllm: ...", "E rkllm: ..."),
// information on stdout and warnings and errors on stderr: which stream the real library uses is
// not documented (rkllm-abi.md), so whatever loads it must keep both away from any protocol.
#pragma once

namespace emu {

// Prints "<level> rkllm: <message>\n" as one write: 'I' to stdout, 'W' and 'E' to stderr.
void runtime_log(char level, const char* format, ...) __attribute__((format(printf, 2, 3)));

// Prints "[rkllm-emulated] <message>\n" as a single write so lines from threads do not interleave.
void log_line(const char* format, ...) __attribute__((format(printf, 1, 2)));

}  // namespace emu
