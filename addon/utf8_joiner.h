// Holds the bytes of a UTF-8 character that the runtime split across tokens, so that every text
// handed to JavaScript is whole UTF-8. Works whether the runtime flags such tokens WAITING with
// the partial bytes in `text` (as the SDK's demos accumulate them) or not at all.
#pragma once

#include <string>

namespace rkllm_serve {

class Utf8Joiner {
 public:
  // Appends a token's bytes and returns the longest prefix of complete characters held so far.
  std::string Push(const char* bytes);
  // True while bytes of an incomplete character are held back.
  bool holding() const { return !held_.empty(); }
  // At the end of a run: whatever is still held can never complete; returns it as U+FFFD.
  std::string Flush();
  void Reset() { held_.clear(); }

 private:
  std::string held_;
};

}  // namespace rkllm_serve
