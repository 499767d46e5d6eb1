// Turns the texts of a run's result callbacks into whole, valid UTF-8 for JavaScript, whatever the
// runtime does with a token that ends inside a character. The evidence (docs/rkllm-abi.md, "What
// WAITING carries") allows three behaviours: WAITING carries the partial bytes and the next NORMAL
// only the rest; WAITING carries them and NORMAL the whole character again; WAITING carries nothing
// and NORMAL the whole character. UTF-8 is self-synchronising, so the first byte of the NORMAL
// text tells them apart:
// - bytes from WAITING callbacks are held and handed on with nothing;
// - a NORMAL text that starts with a continuation byte (10xxxxxx) continues them: they are joined;
// - a NORMAL text that starts a new character re-sends them: they are dropped;
// - a NORMAL text that itself ends inside a character is held whole until a later one completes it;
// - whatever is handed on is valid UTF-8: a byte that belongs to no character becomes U+FFFD.
#pragma once

#include <string>

namespace rkllm_serve {

class Utf8Joiner {
 public:
  struct Piece {
    std::string text;   // valid UTF-8, empty while held
    bool held = false;  // bytes are kept back for a later callback (the wire's WAITING)
  };

  // One result callback's text; bytes may be NULL (no text).
  Piece Take(bool waiting, const char* bytes);
  // At the end of a run: what is still held can never be completed; its whole characters are
  // handed on and an unfinished one becomes U+FFFD.
  std::string Flush();
  void Reset();

 private:
  std::string normal_;   // NORMAL text that ends inside a character, not yet handed on
  std::string waiting_;  // bytes of WAITING callbacks since (or before) it
};

}  // namespace rkllm_serve
