// Float arrays written as base64 text on the wire: the bytes of little-endian IEEE-754 float32
// values, back to back. Clients that hold embeddings as binary send them this way at 4/3 of their
// size, instead of as decimal numbers at two to three times that.
#pragma once

#include <string>
#include <vector>

namespace rkllm_serve {

// Decodes standard base64 (RFC 4648 section 4; the trailing '=' padding may be left out) into
// floats. False with *reason (a phrase to follow the field's name) when the text is not base64 or
// its bytes are not a whole number of floats.
bool DecodeBase64Floats(const std::string& text, std::vector<float>* out, std::string* reason);

}  // namespace rkllm_serve
