// The faults of the real runtime that end or freeze the calling thread or process (rkllm-abi.md,
// "How the real runtime behaves"), done for real so that whatever hosts the library meets them
// as it would on a board.
#pragma once

namespace emu {

// A store to an unmapped address: a kernel-generated SIGSEGV, like a fault in the real library.
[[noreturn]] void segfault_now();
// Blocks the calling thread for good (an NPU that never answers).
[[noreturn]] void hang_forever();
// exit(1) from inside the library, with the thread that called it still in a library call.
[[noreturn]] void exit_now();

}  // namespace emu
