#include "emulator/tokenizer.h"

namespace emu {

namespace {

constexpr uint32_t kFnvOffset = 2166136261u;
constexpr uint32_t kFnvPrime = 16777619u;
// Consumed text is dropped from the stream's buffer once this much has piled up.
constexpr size_t kCompactAfterBytes = 1 << 16;

}  // namespace

size_t piece_end(const char* text, size_t size, size_t pos) {
  size_t i = pos;
  if (text[i] == ' ' && i + 1 < size && is_word_byte(static_cast<unsigned char>(text[i + 1]))) ++i;
  if (!is_word_byte(static_cast<unsigned char>(text[i]))) return i + 1;
  while (i < size && is_word_byte(static_cast<unsigned char>(text[i]))) ++i;
  return i;
}

int32_t token_id(const char* bytes, size_t length, int32_t vocab_size) {
  uint32_t hash = kFnvOffset;
  for (size_t i = 0; i < length; ++i) {
    hash ^= static_cast<unsigned char>(bytes[i]);
    hash *= kFnvPrime;
  }
  return static_cast<int32_t>(hash % static_cast<uint32_t>(vocab_size));
}

void tokenize(std::string_view text, int32_t vocab_size, std::vector<int32_t>* ids) {
  const char* data = text.data();
  size_t size = text.size();
  size_t pos = 0;
  while (pos < size) {
    size_t end = piece_end(data, size, pos);
    while (pos < end) {
      size_t chunk = end - pos < kMaxTokenBytes ? end - pos : kMaxTokenBytes;
      ids->push_back(token_id(data + pos, chunk, vocab_size));
      pos += chunk;
    }
  }
}

bool TokenStream::pull() {
  if (exhausted_) return false;
  size_t before = buffer_.size();
  while (buffer_.size() == before) {
    if (!source_->append_more(&buffer_)) {
      exhausted_ = true;
      return false;
    }
  }
  return true;
}

bool TokenStream::next(const char** bytes, size_t* length, bool* incomplete) {
  if (pos_ == piece_end_) {
    if (pos_ >= kCompactAfterBytes) {
      buffer_.erase(0, pos_);
      pos_ = piece_end_ = 0;
    }
    // A piece that touches the end of the buffer may continue in text not pulled yet.
    while (true) {
      if (pos_ >= buffer_.size()) {
        if (!pull()) return false;
        continue;
      }
      size_t end = piece_end(buffer_.data(), buffer_.size(), pos_);
      if (end < buffer_.size() || exhausted_ || !pull()) {
        piece_end_ = end;
        break;
      }
    }
  }
  size_t end = piece_end_ - pos_ < kMaxTokenBytes ? piece_end_ : pos_ + kMaxTokenBytes;
  *bytes = buffer_.data() + pos_;
  *length = end - pos_;
  *incomplete = ends_inside_character(buffer_.data(), buffer_.size(), end);
  pos_ = end;
  return true;
}

}  // namespace emu
