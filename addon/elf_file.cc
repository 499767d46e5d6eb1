#include "elf_file.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <vector>

namespace rkllm_serve {
namespace {

// Values of the ELF specification (System V gABI, and each processor's supplement for e_machine
// and ARM's e_flags), named here rather than taken from <elf.h>, whose list varies with the libc.
constexpr unsigned char kMagic[4] = {0x7f, 'E', 'L', 'F'};
constexpr int kClassByte = 4;
constexpr int kDataByte = 5;
constexpr uint8_t kClass32 = 1, kClass64 = 2;
constexpr uint8_t kLittleEndian = 1, kBigEndian = 2;
constexpr uint16_t kMachineNone = 0, kMachineX86 = 3, kMachineMips = 8, kMachinePpc64 = 21, kMachineS390 = 22,
                   kMachineArm = 40, kMachineX86_64 = 62, kMachineAarch64 = 183, kMachineRiscv = 243;
constexpr uint32_t kArmHardFloat = 0x400;  // EF_ARM_ABI_FLOAT_HARD

// The machine this addon was built for: the one a library must match to load into this process.
#if defined(__x86_64__)
constexpr uint16_t kHostMachine = kMachineX86_64;
#elif defined(__i386__)
constexpr uint16_t kHostMachine = kMachineX86;
#elif defined(__aarch64__)
constexpr uint16_t kHostMachine = kMachineAarch64;
#elif defined(__arm__)
constexpr uint16_t kHostMachine = kMachineArm;
#elif defined(__riscv)
constexpr uint16_t kHostMachine = kMachineRiscv;
#else
constexpr uint16_t kHostMachine = kMachineNone;  // not known here: the check is left to dlopen
#endif
constexpr uint8_t kHostClass = sizeof(void*) == 8 ? kClass64 : kClass32;
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
constexpr uint8_t kHostByteOrder = kLittleEndian;
#else
constexpr uint8_t kHostByteOrder = kBigEndian;
#endif
#if defined(__arm__) && defined(__ARM_PCS_VFP)
constexpr uint32_t kHostFlags = kArmHardFloat;
#else
constexpr uint32_t kHostFlags = 0;
#endif

std::string Describe(uint16_t machine, uint8_t elf_class, uint8_t byte_order, uint32_t flags) {
  std::string name;
  switch (machine) {
    case kMachineX86_64: name = elf_class == kClass64 ? "x86-64" : "x32"; break;
    case kMachineX86: name = "32-bit x86"; break;
    case kMachineAarch64: name = elf_class == kClass64 ? "aarch64" : "aarch64 ILP32"; break;
    // Rockchip's 32-bit builds are hard-float ("armhf" in the SDK's folder names).
    case kMachineArm: name = (flags & kArmHardFloat) != 0 ? "armhf (32-bit ARM)" : "32-bit ARM (soft-float)"; break;
    case kMachineRiscv: name = elf_class == kClass64 ? "riscv64" : "riscv32"; break;
    case kMachinePpc64: name = "ppc64"; break;
    case kMachineS390: name = "s390x"; break;
    case kMachineMips: name = "mips"; break;
    default: name = "ELF machine " + std::to_string(machine); break;
  }
  if (byte_order == kBigEndian) name += ", big-endian";
  return name;
}

}  // namespace

std::optional<ElfFile> ElfFile::Open(const std::string& path) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) return std::nullopt;
  unsigned char header[64] = {};
  size_t got = std::fread(header, 1, sizeof(header), file);
  std::fclose(file);
  if (got < 20 || std::memcmp(header, kMagic, sizeof(kMagic)) != 0) return std::nullopt;
  ElfFile elf;
  elf.path_ = path;
  elf.elf_class_ = header[kClassByte];
  elf.byte_order_ = header[kDataByte];
  if (elf.byte_order_ != kLittleEndian && elf.byte_order_ != kBigEndian) return std::nullopt;
  elf.machine_ = static_cast<uint16_t>(elf.Read(header + 18, 2));
  if (elf.elf_class_ == kClass64 && got >= 64) {
    elf.section_table_ = elf.Read(header + 0x28, 8);
    elf.flags_ = static_cast<uint32_t>(elf.Read(header + 0x30, 4));
    elf.section_entry_size_ = static_cast<uint16_t>(elf.Read(header + 0x3A, 2));
    elf.section_count_ = static_cast<uint16_t>(elf.Read(header + 0x3C, 2));
    elf.section_names_index_ = static_cast<uint16_t>(elf.Read(header + 0x3E, 2));
  } else if (elf.elf_class_ == kClass32 && got >= 52) {
    elf.section_table_ = elf.Read(header + 0x20, 4);
    elf.flags_ = static_cast<uint32_t>(elf.Read(header + 0x24, 4));
    elf.section_entry_size_ = static_cast<uint16_t>(elf.Read(header + 0x2E, 2));
    elf.section_count_ = static_cast<uint16_t>(elf.Read(header + 0x30, 2));
    elf.section_names_index_ = static_cast<uint16_t>(elf.Read(header + 0x32, 2));
  } else if (elf.elf_class_ != kClass32 && elf.elf_class_ != kClass64) {
    return std::nullopt;
  }
  return elf;
}

uint64_t ElfFile::Read(const unsigned char* at, int bytes) const {
  uint64_t value = 0;
  for (int i = 0; i < bytes; ++i) {
    int shift = byte_order_ == kLittleEndian ? 8 * i : 8 * (bytes - 1 - i);
    value |= static_cast<uint64_t>(at[i]) << shift;
  }
  return value;
}

bool ElfFile::MatchesHost() const {
  if (kHostMachine == kMachineNone) return true;
  if (machine_ != kHostMachine || elf_class_ != kHostClass || byte_order_ != kHostByteOrder) return false;
  // A soft-float ARM library cannot be called from a hard-float process, nor the reverse.
  if (machine_ == kMachineArm && (flags_ & kArmHardFloat) != (kHostFlags & kArmHardFloat)) return false;
  return true;
}

std::string ElfFile::Describe() const { return rkllm_serve::Describe(machine_, elf_class_, byte_order_, flags_); }

std::string ElfFile::DescribeHost() { return rkllm_serve::Describe(kHostMachine, kHostClass, kHostByteOrder, kHostFlags); }

std::optional<std::string> ElfFile::ReadSection(const std::string& name, uint64_t max_bytes) const {
  const bool is64 = elf_class_ == kClass64;
  const uint16_t needed = is64 ? 64 : 40;
  if (section_table_ == 0 || section_count_ == 0 || section_entry_size_ < needed || section_names_index_ >= section_count_) {
    return std::nullopt;
  }
  std::FILE* file = std::fopen(path_.c_str(), "rb");
  if (file == nullptr) return std::nullopt;
  auto read_at = [file](uint64_t offset, void* into, size_t length) {
    return std::fseek(file, static_cast<long>(offset), SEEK_SET) == 0 && std::fread(into, 1, length, file) == length;
  };
  std::vector<unsigned char> table(static_cast<size_t>(section_entry_size_) * section_count_);
  std::optional<std::string> found;
  if (read_at(section_table_, table.data(), table.size())) {
    // sh_name, sh_offset and sh_size of entry i.
    auto entry = [&](uint16_t i, uint64_t* name_offset, uint64_t* offset, uint64_t* size) {
      const unsigned char* at = table.data() + static_cast<size_t>(i) * section_entry_size_;
      *name_offset = Read(at, 4);
      *offset = is64 ? Read(at + 24, 8) : Read(at + 16, 4);
      *size = is64 ? Read(at + 32, 8) : Read(at + 20, 4);
    };
    uint64_t names_name, names_offset, names_size;
    entry(section_names_index_, &names_name, &names_offset, &names_size);
    std::vector<char> names(static_cast<size_t>(std::min<uint64_t>(names_size, 1 << 20)) + 1, '\0');
    if (read_at(names_offset, names.data(), names.size() - 1)) {
      for (uint16_t i = 0; i < section_count_ && !found; ++i) {
        uint64_t name_offset, offset, size;
        entry(i, &name_offset, &offset, &size);
        if (name_offset >= names.size() - 1 || name != names.data() + name_offset) continue;
        std::string contents(static_cast<size_t>(std::min(size, max_bytes)), '\0');
        if (read_at(offset, contents.data(), contents.size())) found = std::move(contents);
      }
    }
  }
  std::fclose(file);
  return found;
}

}  // namespace rkllm_serve
