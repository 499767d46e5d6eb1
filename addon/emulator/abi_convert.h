// Copies the chosen ABI's structs into the engine's ABI-neutral ones, reading every byte of
// caller memory the run needs (prompt, ids, embeddings) before the call returns.
#pragma once

#include <string>

#include "emulator/abi_select.h"
#include "emulator/run_request.h"

namespace emu {

abi::Param default_param();

// Fills everything but settings->model. False with *error when the arguments are unusable.
bool settings_from_abi(const abi::Param& param, abi::InitCallbackArg callback, EngineSettings* settings,
                       std::string* error);

// embedding_size and max_context_len come from the handle's model: they size the embedding
// arrays to read (arrays for more tokens than the context are not read: that run will fail).
bool request_from_abi(const abi::Input* input, const abi::InferParam* infer, void* userdata,
                      const EngineSettings& settings, RunRequest* request, std::string* error);

}  // namespace emu
