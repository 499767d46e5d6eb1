#include "utf8_joiner.h"

#include <cstring>

namespace rkllm_serve {
namespace {

constexpr char kReplacement[] = "\xEF\xBF\xBD";  // U+FFFD

bool IsContinuation(unsigned char byte) { return (byte & 0xC0) == 0x80; }

enum class Sequence { kWhole, kTruncated, kInvalid };

// Classifies the bytes at `p` (`available` of them) by the well-formed sequences of the Unicode
// standard (no overlong forms, no surrogates, nothing above U+10FFFF). *length is how many bytes
// the sequence, its truncated start, or the invalid stretch to replace by one U+FFFD takes.
Sequence Classify(const unsigned char* p, size_t available, size_t* length) {
  const unsigned char lead = p[0];
  size_t needed;
  unsigned char low = 0x80, high = 0xBF;  // the second byte's range; later ones are always 80..BF
  if (lead < 0x80) {
    *length = 1;
    return Sequence::kWhole;
  } else if (lead >= 0xC2 && lead <= 0xDF) {
    needed = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    needed = 3;
    if (lead == 0xE0) low = 0xA0;
    if (lead == 0xED) high = 0x9F;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    needed = 4;
    if (lead == 0xF0) low = 0x90;
    if (lead == 0xF4) high = 0x8F;
  } else {
    *length = 1;
    return Sequence::kInvalid;
  }
  for (size_t i = 1; i < needed; ++i) {
    if (i >= available) {
      *length = i;
      return Sequence::kTruncated;
    }
    const unsigned char byte = p[i];
    if (i == 1 ? (byte < low || byte > high) : !IsContinuation(byte)) {
      *length = i;
      return Sequence::kInvalid;
    }
  }
  *length = needed;
  return Sequence::kWhole;
}

// Appends `bytes` to *out as valid UTF-8. Returns false, with *out unspecified, when they end
// inside a character, unless `final`: then that unfinished character becomes U+FFFD too.
bool AppendValid(const char* bytes, size_t size, bool final, std::string* out) {
  const unsigned char* p = reinterpret_cast<const unsigned char*>(bytes);
  size_t pos = 0;
  while (pos < size) {
    size_t length;
    switch (Classify(p + pos, size - pos, &length)) {
      case Sequence::kWhole:
        out->append(bytes + pos, length);
        break;
      case Sequence::kInvalid:
        out->append(kReplacement);
        break;
      case Sequence::kTruncated:
        if (!final) return false;
        out->append(kReplacement);
        break;
    }
    pos += length;
  }
  return true;
}

}  // namespace

Utf8Joiner::Piece Utf8Joiner::Take(bool waiting, const char* bytes) {
  Piece piece;
  const size_t size = bytes != nullptr ? std::strlen(bytes) : 0;
  if (waiting) {
    waiting_.append(bytes != nullptr ? bytes : "", size);
    piece.held = true;
    return piece;
  }
  const bool holding = !normal_.empty() || !waiting_.empty();
  if (size == 0) {
    piece.held = holding;
    return piece;
  }
  std::string joined;
  const char* text = bytes;
  size_t text_size = size;
  if (holding) {
    if (IsContinuation(static_cast<unsigned char>(bytes[0]))) {
      joined = normal_ + waiting_;
    } else {
      // A new character: the WAITING bytes were re-sent in this text; a NORMAL text's unfinished
      // character never will be.
      AppendValid(normal_.data(), normal_.size(), true, &joined);
    }
    joined.append(bytes, size);
    text = joined.data();
    text_size = joined.size();
    normal_.clear();
    waiting_.clear();
  }
  if (!AppendValid(text, text_size, false, &piece.text)) {
    normal_.assign(text, text_size);
    piece.text.clear();
    piece.held = true;
  }
  return piece;
}

std::string Utf8Joiner::Flush() {
  std::string rest;
  std::string held = normal_ + waiting_;
  AppendValid(held.data(), held.size(), true, &rest);
  Reset();
  return rest;
}

void Utf8Joiner::Reset() {
  normal_.clear();
  waiting_.clear();
}

}  // namespace rkllm_serve
