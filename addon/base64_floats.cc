#include "base64_floats.h"

#include <cstdint>
#include <cstring>

namespace rkllm_serve {
namespace {

// The value of a base64 digit, or -1.
int DigitValue(unsigned char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

}  // namespace

bool DecodeBase64Floats(const std::string& text, std::vector<float>* out, std::string* reason) {
  size_t digits = text.size();
  // Padding: at most two '=' at the very end, and only to fill the last group of four.
  size_t padding = 0;
  while (padding < 2 && digits > 0 && text[digits - 1] == '=') {
    --digits;
    ++padding;
  }
  if (padding > 0 && text.size() % 4 != 0) {
    *reason = "is not valid base64 (its '=' padding does not complete a group of four)";
    return false;
  }
  for (size_t i = 0; i < digits; ++i) {
    if (DigitValue(static_cast<unsigned char>(text[i])) < 0) {
      *reason = "is not valid base64 (character " + std::to_string(i) + " is not a base64 digit)";
      return false;
    }
  }
  if (digits % 4 == 1) {
    *reason = "is not valid base64 (its length leaves a lone digit)";
    return false;
  }
  const size_t bytes = digits / 4 * 3 + (digits % 4 == 0 ? 0 : digits % 4 - 1);
  if (bytes % sizeof(float) != 0) {
    *reason = "must be base64 of little-endian float32 values: it holds " + std::to_string(bytes) +
              " bytes, not a multiple of 4";
    return false;
  }
  out->assign(bytes / sizeof(float), 0.0f);
  uint32_t group = 0;
  int group_digits = 0;
  size_t written = 0;
  uint8_t float_bytes[4];
  auto put = [&](uint8_t byte) {
    float_bytes[written % 4] = byte;
    ++written;
    if (written % 4 == 0) {
      // Assembled little-endian whatever the host's order.
      uint32_t bits = uint32_t(float_bytes[0]) | uint32_t(float_bytes[1]) << 8 | uint32_t(float_bytes[2]) << 16 |
                      uint32_t(float_bytes[3]) << 24;
      std::memcpy(&(*out)[written / 4 - 1], &bits, sizeof(bits));
    }
  };
  for (size_t i = 0; i < digits; ++i) {
    int value = DigitValue(static_cast<unsigned char>(text[i]));
    group = group << 6 | static_cast<uint32_t>(value);
    if (++group_digits == 4) {
      put(static_cast<uint8_t>(group >> 16));
      put(static_cast<uint8_t>(group >> 8));
      put(static_cast<uint8_t>(group));
      group = 0;
      group_digits = 0;
    }
  }
  // A final group of two or three digits carries one or two bytes.
  if (group_digits == 2) {
    put(static_cast<uint8_t>(group >> 4));
  } else if (group_digits == 3) {
    put(static_cast<uint8_t>(group >> 10));
    put(static_cast<uint8_t>(group >> 2));
  }
  return true;
}

}  // namespace rkllm_serve
