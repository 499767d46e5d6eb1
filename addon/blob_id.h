// The git blob id of a file: sha1("blob <size>\0" + content). docs/rkllm-abi.md lists the blob ids of
// the official librkllmrt builds, which is how a real library's ABI is told apart.
#pragma once

#include <string>

namespace rkllm_serve {

// Returns the 40-hex-digit id, or an empty string if the file cannot be read.
std::string GitBlobIdOfFile(const std::string& path);

// Exposed for tests of the hash itself.
std::string Sha1Hex(const std::string& data);

}  // namespace rkllm_serve
