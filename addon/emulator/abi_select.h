// Picks the ABI this build of the emulated runtime speaks (CMake builds the sources once per ABI).
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
#elif RKLLM_EMULATED_ABI == 131
namespace emu {
namespace abi = rkllm::abi131;
inline constexpr const char* kAbiName = "1.3.1";
}  // namespace emu
#else
#error "RKLLM_EMULATED_ABI must be 12, 13 or 131"
#endif

// The 1.3 family (1.3.0 and 1.3.1) shares everything but the multimodal input's audio block.
#define RKLLM_EMULATED_ABI_13_FAMILY (RKLLM_EMULATED_ABI == 13 || RKLLM_EMULATED_ABI == 131)
