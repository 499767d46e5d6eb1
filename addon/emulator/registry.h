// The live handles. Handles given to callers are opaque numbers, never pointers, so a stale or
// forged handle is looked up and refused instead of dereferenced, and a freed handle's value
// is never reused by a later init.
#pragma once

#include <memory>

#include "emulator/engine.h"

namespace emu {

// Loads the model file named in settings, enforces one live handle per base_domain_id, sleeps
// the model's load time and starts the engine. On success stores the new handle in *handle.
int create_engine(EngineSettings settings, void** handle);

// The engine behind handle, or nullptr (after logging "<function>: ...") when it is not live.
std::shared_ptr<Engine> find_engine(void* handle, const char* function);

// Removes the handle, stops its engine and frees it. -1 when the handle is not live, or when
// called from that handle's own result callback.
int destroy_engine(void* handle);

}  // namespace emu
