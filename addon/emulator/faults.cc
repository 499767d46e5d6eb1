#include "emulator/faults.h"

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <thread>

namespace emu {

void segfault_now() {
  // Page 0 is never mapped; a volatile store through a computed address is not optimised away.
  volatile std::uintptr_t address = 8;
  *reinterpret_cast<volatile int*>(address) = 1;
  std::abort();  // Not reached; keeps [[noreturn]] honest if the store were ever allowed.
}

void hang_forever() {
  for (;;) std::this_thread::sleep_for(std::chrono::hours(1));
}

void exit_now() { std::exit(1); }

}  // namespace emu
