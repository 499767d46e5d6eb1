// The ELF facts the runtime loader reads from a library file before (or instead of) dlopen: the
// machine and word size it was built for, so that a library for another machine is refused by
// name rather than with the loader's "No such file or directory" (glibc reports a foreign
// e_machine as ENOENT), and its .rodata section, where the release's version banner is kept.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace rkllm_serve {

class ElfFile {
 public:
  // Reads the ELF header of path. nullopt when the file cannot be read or is not ELF at all
  // (dlopen then gives its own reason).
  static std::optional<ElfFile> Open(const std::string& path);

  // Whether this process could load it: same machine, word size and byte order as the addon.
  bool MatchesHost() const;
  // What it was built for, in the words Rockchip's SDK uses where it has them ("aarch64", "armhf").
  std::string Describe() const;
  // The same for this process.
  static std::string DescribeHost();

  // The contents of the named section (at most max_bytes of it); nullopt when the file has no
  // such section or it cannot be read.
  std::optional<std::string> ReadSection(const std::string& name, uint64_t max_bytes) const;

 private:
  ElfFile() = default;
  uint64_t Read(const unsigned char* at, int bytes) const;  // in the file's byte order

  std::string path_;
  uint8_t elf_class_ = 0;    // 1: 32-bit, 2: 64-bit
  uint8_t byte_order_ = 0;   // 1: little-endian, 2: big-endian
  uint16_t machine_ = 0;     // e_machine
  uint32_t flags_ = 0;       // e_flags (the ARM float ABI lives there)
  uint64_t section_table_ = 0;
  uint16_t section_entry_size_ = 0;
  uint16_t section_count_ = 0;
  uint16_t section_names_index_ = 0;
};

}  // namespace rkllm_serve
