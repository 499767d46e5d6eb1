#include "blob_id.h"

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

namespace rkllm_serve {
namespace {

// A streaming SHA-1 (FIPS 180-4); enough for hashing a library file once at open.
class Sha1 {
 public:
  void Update(const uint8_t* data, size_t length) {
    total_bytes_ += length;
    while (length > 0) {
      size_t take = std::min(length, sizeof(block_) - block_used_);
      std::memcpy(block_ + block_used_, data, take);
      block_used_ += take;
      data += take;
      length -= take;
      if (block_used_ == sizeof(block_)) {
        Compress(block_);
        block_used_ = 0;
      }
    }
  }

  std::string FinishHex() {
    const uint64_t total_bits = total_bytes_ * 8;
    const uint8_t pad_start = 0x80;
    Update(&pad_start, 1);
    const uint8_t zero = 0;
    while (block_used_ != 56) Update(&zero, 1);
    uint8_t length_bytes[8];
    for (int i = 0; i < 8; ++i) length_bytes[i] = static_cast<uint8_t>(total_bits >> (56 - 8 * i));
    Update(length_bytes, 8);
    char hex[41];
    for (int i = 0; i < 5; ++i) std::snprintf(hex + 8 * i, 9, "%08x", state_[i]);
    return std::string(hex, 40);
  }

 private:
  static uint32_t Rotl(uint32_t value, int bits) { return (value << bits) | (value >> (32 - bits)); }

  void Compress(const uint8_t* block) {
    uint32_t w[80];
    for (int i = 0; i < 16; ++i) {
      w[i] = (uint32_t(block[4 * i]) << 24) | (uint32_t(block[4 * i + 1]) << 16) |
             (uint32_t(block[4 * i + 2]) << 8) | uint32_t(block[4 * i + 3]);
    }
    for (int i = 16; i < 80; ++i) w[i] = Rotl(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    uint32_t a = state_[0], b = state_[1], c = state_[2], d = state_[3], e = state_[4];
    for (int i = 0; i < 80; ++i) {
      uint32_t f, k;
      if (i < 20) {
        f = (b & c) | (~b & d);
        k = 0x5A827999;
      } else if (i < 40) {
        f = b ^ c ^ d;
        k = 0x6ED9EBA1;
      } else if (i < 60) {
        f = (b & c) | (b & d) | (c & d);
        k = 0x8F1BBCDC;
      } else {
        f = b ^ c ^ d;
        k = 0xCA62C1D6;
      }
      uint32_t next = Rotl(a, 5) + f + e + k + w[i];
      e = d;
      d = c;
      c = Rotl(b, 30);
      b = a;
      a = next;
    }
    state_[0] += a;
    state_[1] += b;
    state_[2] += c;
    state_[3] += d;
    state_[4] += e;
  }

  uint32_t state_[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
  uint8_t block_[64] = {};
  size_t block_used_ = 0;
  uint64_t total_bytes_ = 0;
};

}  // namespace

std::string Sha1Hex(const std::string& data) {
  Sha1 sha;
  sha.Update(reinterpret_cast<const uint8_t*>(data.data()), data.size());
  return sha.FinishHex();
}

std::string GitBlobIdOfFile(const std::string& path) {
  FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) return "";
  if (std::fseek(file, 0, SEEK_END) != 0) {
    std::fclose(file);
    return "";
  }
  long size = std::ftell(file);
  std::rewind(file);
  if (size < 0) {
    std::fclose(file);
    return "";
  }
  Sha1 sha;
  std::string header = "blob " + std::to_string(size);
  header.push_back('\0');
  sha.Update(reinterpret_cast<const uint8_t*>(header.data()), header.size());
  std::vector<uint8_t> buffer(1 << 16);
  long hashed = 0;
  size_t got;
  while ((got = std::fread(buffer.data(), 1, buffer.size(), file)) > 0) {
    sha.Update(buffer.data(), got);
    hashed += static_cast<long>(got);
  }
  std::fclose(file);
  if (hashed != size) return "";  // the file changed under us
  return sha.FinishHex();
}

}  // namespace rkllm_serve
