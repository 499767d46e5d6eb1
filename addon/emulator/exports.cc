// The 15 functions of librkllmrt, plus the marker the addon uses to recognise this emulated
// runtime and its ABI. Each one validates its arguments, copies what it needs and hands over to
// the engine or the handle registry.
#include <sys/stat.h>

#include <cstdio>
#include <string>

#include "emulator/abi_convert.h"
#include "emulator/abi_select.h"
#include "emulator/log.h"
#include "emulator/registry.h"

#define RKLLM_EXPORT extern "C" __attribute__((visibility("default")))

using emu::log_line;
using rkllm::Handle;

namespace {

std::string copy_or_empty(const char* s) { return s ? std::string(s) : std::string(); }

bool readable_regular_file(const char* path) {
  struct stat info;
  if (::stat(path, &info) != 0 || !S_ISREG(info.st_mode)) return false;
  std::FILE* file = std::fopen(path, "rb");
  if (!file) return false;
  std::fclose(file);
  return true;
}

int submit_run(Handle handle, emu::abi::Input* input, emu::abi::InferParam* infer, void* userdata, bool wait,
               const char* function) {
  auto engine = emu::find_engine(handle, function);
  if (!engine) return -1;
  emu::RunRequest request;
  std::string error;
  if (!emu::request_from_abi(input, infer, userdata, engine->settings(), &request, &error)) {
    log_line("%s: %s", function, error.c_str());
    return -1;
  }
  return engine->run(std::move(request), wait);
}

}  // namespace

RKLLM_EXPORT const char* rkllm_emulated_runtime_abi(void) { return emu::kAbiName; }

RKLLM_EXPORT emu::abi::Param rkllm_createDefaultParam(void) { return emu::default_param(); }

RKLLM_EXPORT int rkllm_init(Handle* handle, emu::abi::Param* param, emu::abi::InitCallbackArg callback) {
  if (!handle) {
    log_line("rkllm_init: handle is NULL");
    return -1;
  }
  *handle = nullptr;
  if (!param) {
    log_line("rkllm_init: param is NULL");
    return -1;
  }
  emu::EngineSettings settings;
  std::string error;
  if (!emu::settings_from_abi(*param, callback, &settings, &error)) {
    log_line("rkllm_init: %s", error.c_str());
    return -1;
  }
  return emu::create_engine(std::move(settings), handle);
}

RKLLM_EXPORT int rkllm_load_lora(Handle handle, rkllm::LoraAdapter* adapter) {
  auto engine = emu::find_engine(handle, "rkllm_load_lora");
  if (!engine) return -1;
  if (!adapter || !adapter->lora_adapter_path || !adapter->lora_adapter_name || !adapter->lora_adapter_name[0]) {
    log_line("rkllm_load_lora: the adapter, its path and a non-empty name are required");
    return -1;
  }
  if (!readable_regular_file(adapter->lora_adapter_path)) {
    log_line("rkllm_load_lora: '%s' is not a readable regular file", adapter->lora_adapter_path);
    return -1;
  }
  engine->add_lora(adapter->lora_adapter_name, adapter->lora_adapter_path, adapter->scale);
  return 0;
}

RKLLM_EXPORT int rkllm_load_prompt_cache(Handle handle, const char* prompt_cache_path) {
  auto engine = emu::find_engine(handle, "rkllm_load_prompt_cache");
  if (!engine) return -1;
  if (!prompt_cache_path) {
    log_line("rkllm_load_prompt_cache: path is NULL");
    return -1;
  }
  std::string error;
  if (!engine->load_prompt_cache(prompt_cache_path, &error)) {
    emu::runtime_log('E', "%s", error.c_str());
    log_line("rkllm_load_prompt_cache: %s", error.c_str());
    return -1;
  }
  return 0;
}

RKLLM_EXPORT int rkllm_release_prompt_cache(Handle handle) {
  auto engine = emu::find_engine(handle, "rkllm_release_prompt_cache");
  if (!engine) return -1;
  engine->release_prompt_cache();
  return 0;
}

RKLLM_EXPORT int rkllm_destroy(Handle handle) { return emu::destroy_engine(handle); }

RKLLM_EXPORT int rkllm_run(Handle handle, emu::abi::Input* input, emu::abi::InferParam* infer, void* userdata) {
  return submit_run(handle, input, infer, userdata, true, "rkllm_run");
}

RKLLM_EXPORT int rkllm_run_async(Handle handle, emu::abi::Input* input, emu::abi::InferParam* infer,
                                 void* userdata) {
  return submit_run(handle, input, infer, userdata, false, "rkllm_run_async");
}

RKLLM_EXPORT int rkllm_abort(Handle handle) {
  auto engine = emu::find_engine(handle, "rkllm_abort");
  return engine ? engine->abort() : -1;
}

RKLLM_EXPORT int rkllm_is_running(Handle handle) {
  auto engine = emu::find_engine(handle, "rkllm_is_running");
  if (!engine) return -1;
#if RKLLM_EMULATED_ABI == 12
  return engine->is_running() ? 0 : -1;  // the 1.2 convention: 0 means running
#else
  return engine->is_running() ? 1 : 0;
#endif
}

RKLLM_EXPORT int rkllm_clear_kv_cache(Handle handle, int keep_system_prompt, int* start_pos, int* end_pos) {
  auto engine = emu::find_engine(handle, "rkllm_clear_kv_cache");
  return engine ? engine->clear_kv_cache(keep_system_prompt != 0, start_pos, end_pos) : -1;
}

RKLLM_EXPORT int rkllm_get_kv_cache_size(Handle handle, int* cache_sizes) {
  auto engine = emu::find_engine(handle, "rkllm_get_kv_cache_size");
  if (!engine) return -1;
  if (!cache_sizes) {
    log_line("rkllm_get_kv_cache_size: cache_sizes is NULL");
    return -1;
  }
  engine->get_kv_cache_size(cache_sizes);
  return 0;
}

RKLLM_EXPORT int rkllm_set_chat_template(Handle handle, const char* system_prompt, const char* prompt_prefix,
                                         const char* prompt_postfix) {
  auto engine = emu::find_engine(handle, "rkllm_set_chat_template");
  if (!engine) return -1;
  engine->set_chat_template(copy_or_empty(system_prompt), copy_or_empty(prompt_prefix), copy_or_empty(prompt_postfix));
  return 0;
}

RKLLM_EXPORT int rkllm_set_function_tools(Handle handle, const char* system_prompt, const char* tools,
                                          const char* tool_response_str) {
  auto engine = emu::find_engine(handle, "rkllm_set_function_tools");
  if (!engine) return -1;
  if (!tools) {
    log_line("rkllm_set_function_tools: tools is NULL");
    return -1;
  }
  std::string error;
  if (!engine->set_function_tools(copy_or_empty(system_prompt), tools, copy_or_empty(tool_response_str), &error)) {
    log_line("rkllm_set_function_tools: tools is not valid JSON: %s", error.c_str());
    return -1;
  }
  return 0;
}

RKLLM_EXPORT int rkllm_set_cross_attn_params(Handle handle, rkllm::CrossAttnParam* cross_attn_params) {
  auto engine = emu::find_engine(handle, "rkllm_set_cross_attn_params");
  if (!engine) return -1;
  if (!cross_attn_params || cross_attn_params->num_tokens < 0) {
    log_line("rkllm_set_cross_attn_params: %s", cross_attn_params ? "num_tokens < 0" : "params is NULL");
    return -1;
  }
  // The emulated model has no encoder to attend to; only the token count is kept.
  engine->set_cross_attn_tokens(cross_attn_params->num_tokens);
  return 0;
}
