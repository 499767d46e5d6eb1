#include "emulator/registry.h"

#include <cstdint>
#include <mutex>
#include <set>
#include <system_error>
#include <thread>
#include <unordered_map>

#include "emulator/abi_select.h"
#include "emulator/faults.h"
#include "emulator/log.h"

namespace emu {

namespace {

struct Registry {
  std::mutex mutex;
  std::unordered_map<uintptr_t, std::shared_ptr<Engine>> engines;
  std::set<int32_t> domains_in_use;  // includes handles still loading or shutting down
  // Handle values start high and odd-looking so they never resemble small integers or NULL.
  uintptr_t next_handle = 0x5e000001;
};

Registry& registry() {
  // Never destroyed: handles still live at process exit must not be torn down by static
  // destructors racing their threads.
  static Registry* instance = new Registry;
  return *instance;
}

void release_domain(int32_t domain) {
  std::lock_guard<std::mutex> lock(registry().mutex);
  registry().domains_in_use.erase(domain);
}

}  // namespace

// The runtime version this build stands for, in the real library's init line.
constexpr const char* kRuntimeVersion = kAbiName[2] == '2'   ? "1.2.3-emulated"
                                        : kAbiName[3] == '.' ? "1.3.1-emulated"
                                                             : "1.3.0-emulated";

int create_engine(EngineSettings settings, void** handle) {
  // The real library prints this line to stdout at every init.
  runtime_log('I', "rkllm-runtime version: %s, rknpu driver version: 0.9.8, platform: RK3588", kRuntimeVersion);
  std::string error;
  if (!load_model_file(settings.model_path, &settings.model, &error)) {
    runtime_log('E', "failed to load model: %s", error.c_str());
    log_line("rkllm_init: %s", error.c_str());
    return -1;
  }
  const int32_t domain = settings.base_domain_id;
  {
    std::lock_guard<std::mutex> lock(registry().mutex);
    if (!registry().domains_in_use.insert(domain).second) {
      log_line("rkllm_init: base_domain_id %d is already used by a live handle; running two models at once "
               "needs a different base_domain_id",
               domain);
      return -1;
    }
  }
  const ModelSpec& model = settings.model;
  if (model.load_ms > 0) {
    std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(model.load_ms));
  }
  if (model.crash_in_init) {
    runtime_log('E', "rknpu init failed: injected crash in rkllm_init");
    segfault_now();
  }
  if (model.has_init_error) {
    release_domain(domain);
    runtime_log('E', "%s", model.init_error.c_str());
    log_line("rkllm_init: %s", model.init_error.c_str());
    return -1;
  }
  if (settings.max_context_len > model.max_context_len) {
    runtime_log('W', "Warning: max_context_len %d is larger than the model's %d", settings.max_context_len,
                model.max_context_len);
    log_line("rkllm_init: max_context_len %d exceeds the limit of model '%s'; using %d", settings.max_context_len,
             model.name.c_str(), model.max_context_len);
    settings.max_context_len = model.max_context_len;
  }
  std::shared_ptr<Engine> engine;
  try {
    engine = std::make_shared<Engine>(std::move(settings));
  } catch (const std::system_error& error) {
    // As the real library would: a handle whose thread cannot start is a failed init, not a crash.
    release_domain(domain);
    log_line("rkllm_init: cannot start the handle's inference thread: %s", error.what());
    return -1;
  }
  std::lock_guard<std::mutex> lock(registry().mutex);
  uintptr_t id = registry().next_handle;
  registry().next_handle += 2;
  registry().engines.emplace(id, std::move(engine));
  *handle = reinterpret_cast<void*>(id);
  return 0;
}

std::shared_ptr<Engine> find_engine(void* handle, const char* function) {
  if (handle) {
    std::lock_guard<std::mutex> lock(registry().mutex);
    auto it = registry().engines.find(reinterpret_cast<uintptr_t>(handle));
    if (it != registry().engines.end()) return it->second;
  }
  log_line("%s: %s", function, handle ? "unknown or destroyed handle" : "handle is NULL");
  return nullptr;
}

int destroy_engine(void* handle) {
  std::shared_ptr<Engine> engine = find_engine(handle, "rkllm_destroy");
  if (!engine) return -1;
  if (engine->on_worker_thread()) {
    log_line("rkllm_destroy: cannot destroy a handle from inside its own result callback");
    return -1;
  }
  {
    std::lock_guard<std::mutex> lock(registry().mutex);
    // Two racing destroys: only the one that removes the handle goes on.
    if (registry().engines.erase(reinterpret_cast<uintptr_t>(handle)) == 0) {
      log_line("rkllm_destroy: unknown or destroyed handle");
      return -1;
    }
  }
  engine->shutdown();
  release_domain(engine->settings().base_domain_id);
  return 0;
}

}  // namespace emu
