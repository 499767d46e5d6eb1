// The 15 RKLLM functions behind one interface, whichever ABI the library speaks. Callers pass the
// plain structs of params.h; the implementation builds zero-initialised ABI structs from them for
// the duration of each call. Nothing above this file knows a struct layout.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "abi/rkllm_abi.h"
#include "params.h"

namespace rkllm_serve {

class RuntimeApi {
 public:
  virtual ~RuntimeApi() = default;
  virtual Abi abi() const = 0;

  virtual ModelParams CreateDefaultParam() const = 0;
  // `params` must outlive the handle: the runtime may keep model_path. Results go to the
  // callback given to MakeRuntimeApi, with the userdata passed to Run.
  virtual int Init(rkllm::Handle* handle, const ModelParams& params) const = 0;
  // Blocks until the run ends; the callback fires on the runtime's thread meanwhile.
  virtual int Run(rkllm::Handle handle, RunRequest& request, void* userdata) const = 0;
  virtual int Abort(rkllm::Handle handle) const = 0;
  // Normalised: 1.2 documents 0 as "running", 1.3 documents 1.
  virtual bool IsRunning(rkllm::Handle handle) const = 0;
  virtual int Destroy(rkllm::Handle handle) const = 0;
  virtual int LoadLora(rkllm::Handle handle, LoraAdapterParams& adapter) const = 0;
  virtual int LoadPromptCache(rkllm::Handle handle, const std::string& path) const = 0;
  virtual int ReleasePromptCache(rkllm::Handle handle) const = 0;
  // Null ranges clear everything (keeping the system prompt if asked).
  virtual int ClearKvCache(rkllm::Handle handle, bool keep_system_prompt, std::vector<int>* start_pos,
                           std::vector<int>* end_pos) const = 0;
  // `sizes` comes sized to n_batch and receives one entry per batch.
  virtual int GetKvCacheSize(rkllm::Handle handle, std::vector<int>& sizes) const = 0;
  virtual int SetChatTemplate(rkllm::Handle handle, const std::string& system_prompt,
                              const std::string& prompt_prefix, const std::string& prompt_postfix) const = 0;
  virtual int SetFunctionTools(rkllm::Handle handle, const std::string& system_prompt, const std::string& tools,
                               const std::string& tool_response_str) const = 0;
  virtual int SetCrossAttnParams(rkllm::Handle handle, CrossAttnParams& params) const = 0;
};

// Resolves the 15 functions from a dlopen()ed library; every run's results go to `callback`. On
// failure returns null and lists the names that are missing.
std::unique_ptr<RuntimeApi> MakeRuntimeApi(Abi abi, void* library, rkllm::ResultCallback callback,
                                           std::vector<std::string>& missing);

}  // namespace rkllm_serve
