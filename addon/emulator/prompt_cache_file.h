// The emulated prompt cache file. The real runtime dumps NPU KV memory; the emulator stores the
// prompt's token ids as text so the file is real, checkable and small:
//
//   RKLLM-EMULATED-PROMPT-CACHE 1\n
//   tokens <count>\n
//   <id> <id> ... <id>\n        (count decimal ids separated by single spaces; empty when 0)
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace emu {

bool write_prompt_cache(const std::string& path, const std::vector<int32_t>& ids, std::string* error);
bool read_prompt_cache(const std::string& path, std::vector<int32_t>* ids, std::string* error);

}  // namespace emu
