// What a model's worker reports to JavaScript, in order, through one ThreadSafeFunction. A run's
// tokens and its end share that one queue, so the end can never overtake a token.
#pragma once

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "abi/rkllm_abi.h"
#include "errors.h"

namespace rkllm_serve {

struct TokenEvent {
  uint64_t run_id = 0;
  int32_t state = 0;  // 0 NORMAL, or 1 WAITING while bytes of a split character are held
  std::string text;   // whole, valid UTF-8 only; empty when WAITING
  int32_t token_id = 0;
  double time_us = 0;  // CLOCK_MONOTONIC when the runtime's callback fired
  std::vector<float> logits;
  int32_t vocab_size = 0, logits_tokens = 0;
  std::vector<float> hidden;
  int32_t embd_size = 0, hidden_tokens = 0;
  bool has_logits = false, has_hidden = false;
};

enum class RunStatus { kFinish, kError, kAborted };

struct RunEndEvent {
  uint64_t run_id = 0;
  RunStatus status = RunStatus::kFinish;
  bool has_perf = false;
  rkllm::Perf perf{};
  NativeError error;  // set when status is kError
  double time_us = 0;
};

// The answer to one promise-returning call (init, destroy, abort, load_lora, ...).
struct CallDoneEvent {
  uint64_t call_id = 0;
  int return_code = 0;
  NativeError error;  // set when the call could not be made at all, or init failed
};

using ModelEvent = std::variant<TokenEvent, RunEndEvent, CallDoneEvent>;

// Where a worker posts its events. Implemented on top of a ThreadSafeFunction by model.cc.
class EventSink {
 public:
  virtual ~EventSink() = default;
  virtual void Post(ModelEvent&& event) = 0;
  // A native thread that will post declares itself first (false: the sink is closed, do not
  // post) and releases when it is done. The worker thread holds one share from the start and
  // releases it as its very last act.
  virtual bool AcquireThread() = 0;
  virtual void ReleaseThread() = 0;
};

double MonotonicMicros();

}  // namespace rkllm_serve
