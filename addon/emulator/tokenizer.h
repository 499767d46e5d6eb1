// The emulated tokenizer. Real models use BPE vocabularies; the emulator only needs something
// deterministic whose token boundaries look like a real model's: words become one or a few
// tokens, punctuation stands alone, and multi-byte characters can straddle two tokens (which is
// what makes the runtime report WAITING).
//
// Rule: text splits into pieces. A piece is an optional single leading space followed by a
// maximal run of word bytes (ASCII letters and digits, and every byte >= 0x80), or else one other
// byte. Pieces longer than kMaxTokenBytes are cut into kMaxTokenBytes-byte tokens from the start.
// A token's id is the 32-bit FNV-1a hash of its bytes modulo the vocabulary size.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace emu {

constexpr size_t kMaxTokenBytes = 4;

inline bool is_word_byte(unsigned char c) {
  return c >= 0x80 || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

// End (exclusive) of the piece starting at pos; requires pos < size.
size_t piece_end(const char* text, size_t size, size_t pos);

int32_t token_id(const char* bytes, size_t length, int32_t vocab_size);

// Appends the ids of text's tokens to ids.
void tokenize(std::string_view text, int32_t vocab_size, std::vector<int32_t>* ids);

// True when the token ending at end (exclusive) stops inside a multi-byte UTF-8 character, i.e.
// the byte that follows it is a continuation byte.
inline bool ends_inside_character(const char* text, size_t size, size_t end) {
  return end < size && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80;
}

// Something that produces answer text bit by bit, so that endless or very long answers
// (ignore_eos, "count to 1000000") never have to exist in memory at once.
class TextSource {
 public:
  virtual ~TextSource() = default;
  // Appends the next stretch of text to out; returns false once there is no more.
  virtual bool append_more(std::string* out) = 0;
};

// Cuts a TextSource's text into tokens, pulling more text only when a piece might continue.
class TokenStream {
 public:
  explicit TokenStream(std::unique_ptr<TextSource> source) : source_(std::move(source)) {}

  // The next token: its bytes (valid until the next call) and whether it ends inside a UTF-8
  // character. Returns false at the end of the text.
  bool next(const char** bytes, size_t* length, bool* incomplete);

 private:
  bool pull();

  std::unique_ptr<TextSource> source_;
  std::string buffer_;
  size_t pos_ = 0;
  size_t piece_end_ = 0;
  bool exhausted_ = false;
};

}  // namespace emu
