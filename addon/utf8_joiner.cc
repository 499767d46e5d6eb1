#include "utf8_joiner.h"

namespace rkllm_serve {
namespace {

// Length of the sequence a lead byte starts; 0 for a continuation or invalid lead byte.
size_t SequenceLength(unsigned char lead) {
  if (lead < 0x80) return 1;
  if ((lead & 0xE0) == 0xC0) return 2;
  if ((lead & 0xF0) == 0xE0) return 3;
  if ((lead & 0xF8) == 0xF0) return 4;
  return 0;
}

// Where the trailing incomplete character of `text` starts (text.size() if there is none).
// Only the last three bytes can belong to an unfinished character.
size_t IncompleteTailStart(const std::string& text) {
  size_t size = text.size();
  size_t lookback = size < 3 ? size : 3;
  for (size_t back = 1; back <= lookback; ++back) {
    unsigned char byte = static_cast<unsigned char>(text[size - back]);
    if ((byte & 0xC0) == 0x80) continue;  // continuation byte: keep looking for its lead
    size_t needed = SequenceLength(byte);
    return (needed > back) ? size - back : size;
  }
  return size;
}

}  // namespace

std::string Utf8Joiner::Push(const char* bytes) {
  if (bytes != nullptr) held_.append(bytes);
  size_t cut = IncompleteTailStart(held_);
  std::string complete = held_.substr(0, cut);
  held_.erase(0, cut);
  return complete;
}

std::string Utf8Joiner::Flush() {
  if (held_.empty()) return "";
  held_.clear();
  return "\xEF\xBF\xBD";
}

}  // namespace rkllm_serve
