// Picks the ABI this build of the emulated runtime speaks (CMake builds the sources twice).
#pragma once

#include "abi/rkllm_abi.h"

#if RKLLM_EMULATED_ABI == 12
namespace emu {
namespace abi = rkllm::abi12;
inline constexpr const char* kAbiName = "1.2";
}  // namespace emu
#elif RKLLM_EMULATED_ABI == 13
namespace emu {
namespace abi = rkllm::abi13;
inline constexpr const char* kAbiName = "1.3";
}  // namespace emu
#else
#error "RKLLM_EMULATED_ABI must be 12 or 13"
#endif
