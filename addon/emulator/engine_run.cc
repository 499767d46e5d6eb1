#include "emulator/engine_run.h"

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "emulator/faults.h"
#include "emulator/log.h"
#include "emulator/prompt_cache_file.h"
#include "emulator/text_generator.h"
#include "emulator/tokenizer.h"

namespace emu {

namespace {

// Hidden-state and logits arrays larger than this (256 MiB of floats) are refused with an ERROR
// rather than allocated: a real board would not have the memory either.
constexpr uint64_t kMaxOutputFloats = 64ull << 20;

float ms_between(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<float, std::milli>(to - from).count();
}
// This process's resident set (VmRSS) in MiB, as the real runtime reports its memory use.
float resident_mib() {
  std::FILE* status = std::fopen("/proc/self/status", "r");
  if (!status) return 0;
  char line[256];
  long kib = 0;
  while (std::fgets(line, sizeof(line), status)) {
    if (std::sscanf(line, "VmRSS: %ld kB", &kib) == 1) break;
  }
  std::fclose(status);
  return static_cast<float>(kib) / 1024.0f;
}

// Token ids standing for positions filled by embeddings (embed input, images, video frames).
int32_t embedded_token_id(uint64_t embedding_hash, uint64_t index, int32_t vocab_size) {
  uint64_t z = embedding_hash + (index + 1) * 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 31)) * 0xBF58476D1CE4E5B9ull;
  return static_cast<int32_t>((z ^ (z >> 29)) % static_cast<uint64_t>(vocab_size));
}

}  // namespace

void Engine::Run::take_snapshot() {
  std::lock_guard<std::mutex> lock(engine_.mutex_);
  for (int size : engine_.kv_cache_) snapshot_.kv_used = std::max<int64_t>(snapshot_.kv_used, size);
  snapshot_.system_text = engine_.system_text_locked();
  snapshot_.prefix = engine_.prompt_prefix_;
  snapshot_.postfix = engine_.prompt_postfix_;
  snapshot_.tools_set = engine_.tools_set_;
  snapshot_.tool_names = engine_.tool_names_;
  if (request_.has_lora) {
    auto it = engine_.loras_.find(request_.lora_name);
    snapshot_.lora_found = it != engine_.loras_.end();
    if (snapshot_.lora_found) snapshot_.lora_scale = it->second.scale;
  }
  snapshot_.prompt_cache = engine_.prompt_cache_;
}

bool Engine::Run::build_prompt(std::string* error) {
  const int32_t vocab = settings_.model.vocab_size;
  const int64_t limit = settings_.max_context_len;
  const int64_t used = snapshot_.kv_used;
  auto fits = [&](uint64_t count) {
    if (used + static_cast<int64_t>(std::min<uint64_t>(count, 1ull << 40)) <= limit) return true;
    *error = "context length exceeded: " + std::to_string(used) + " tokens in the KV cache + " +
             std::to_string(count) + " prompt tokens > max_context_len " + std::to_string(limit);
    return false;
  };
  switch (request_.input_type) {
    case rkllm::kInputPrompt:
    case rkllm::kInputMultimodal: {
      std::string templated;
      // The system prompt is prefilled only into a fresh KV cache, as in a multi-turn chat.
      if (used == 0) templated = snapshot_.system_text;
      templated += snapshot_.prefix;
      templated += request_.text;
      templated += snapshot_.postfix;
      tokenize(templated, vocab, &prompt_ids_);
      if (!fits(prompt_ids_.size() + request_.embedded_tokens)) return false;
      if (settings_.model.echo_prompt) templated_prompt_ = std::move(templated);
      for (uint64_t i = 0; i < request_.embedded_tokens; ++i) {
        prompt_ids_.push_back(embedded_token_id(request_.embedding_hash, i, vocab));
      }
      break;
    }
    case rkllm::kInputToken:
      if (!fits(request_.token_count)) return false;
      for (size_t i = 0; i < request_.token_ids.size(); ++i) {
        int32_t id = request_.token_ids[i];
        if (id < 0 || id >= vocab) {
          *error = "token id " + std::to_string(id) + " at position " + std::to_string(i) +
                   " is outside the vocabulary [0, " + std::to_string(vocab) + ")";
          return false;
        }
      }
      prompt_ids_ = request_.token_ids;
      break;
    case rkllm::kInputEmbed:
      if (!fits(request_.embedded_tokens)) return false;
      for (uint64_t i = 0; i < request_.embedded_tokens; ++i) {
        prompt_ids_.push_back(embedded_token_id(request_.embedding_hash, i, vocab));
      }
      break;
  }
  if (prompt_ids_.empty()) {
    *error = "the input holds no tokens";
    return false;
  }
  prompt_tokens_ = static_cast<int64_t>(prompt_ids_.size());
  return true;
}

// The request's last turn: the text after the last chat template prefix in it, else all of it.
// A conversation re-sent whole into an empty KV cache has its earlier turns written out in the
// template's marks, each user turn opened by the prefix; the same turn sent on top of the KV
// cache that holds the earlier ones is the last turn alone. Answers depend on this (and the
// system text), so the two get the same answer, as a real model's would at temperature 0.
std::string_view Engine::Run::last_turn() const {
  std::string_view text = request_.text;
  const std::string& prefix = snapshot_.prefix;
  if (prefix.empty()) return text;
  size_t at = text.rfind(prefix);
  return at == std::string_view::npos ? text : text.substr(at + prefix.size());
}

uint64_t Engine::Run::answer_seed() const {
  SeedHasher hasher;
  hasher.add_u64(static_cast<uint64_t>(request_.input_type));
  if (request_.has_text) hasher.add(last_turn());
  hasher.add(snapshot_.system_text);
  if (request_.has_lora) {
    hasher.add(request_.lora_name);
    hasher.add(&snapshot_.lora_scale, sizeof(snapshot_.lora_scale));
  }
  if (request_.has_sampling) hasher.add_u64(request_.sampling_hash);
  hasher.add(request_.token_ids.data(), request_.token_ids.size() * sizeof(int32_t));
  hasher.add_u64(request_.embedding_hash);
  return hasher.value();
}

void Engine::Run::fill_perf(rkllm::Perf* perf) {
  Clock::time_point now = Clock::now();
  perf->prefill_time_ms = ms_between(started_at_, prefill_done_ ? prefilled_at_ : now);
  perf->prefill_tokens = prefill_done_ ? static_cast<int32_t>(prompt_tokens_) : 0;
  perf->generate_time_ms = prefill_done_ ? ms_between(prefilled_at_, now) : 0;
  perf->generate_tokens = static_cast<int32_t>(generated_);
  perf->memory_usage_mb = resident_mib();
}

Engine::Run::End Engine::Run::fail(const std::string& message) {
  runtime_log('E', "run failed: %s", message.c_str());
  rkllm::Result result{};
  result.text = message.c_str();
  fill_perf(&result.perf);
  deliver(&result, rkllm::kStateError);
  return End::kFailed;
}

Engine::Run::End Engine::Run::prefill() {
  // A loaded prompt cache spares the prefill of the prompt's leading tokens it already holds.
  int64_t covered = 0;
  if (const auto& cache = snapshot_.prompt_cache) {
    size_t n = std::min(cache->size(), prompt_ids_.size());
    while (covered < static_cast<int64_t>(n) && (*cache)[covered] == prompt_ids_[covered]) ++covered;
  }
  double prefill_ms = settings_.model.prefill_ms_per_token * static_cast<double>(prompt_tokens_ - covered);
  if (prefill_ms > 0) {
    if (!engine_.sleep_until(started_at_ + from_ms(prefill_ms))) return End::kAborted;
  } else if (abort_landed()) {
    return End::kAborted;
  }
  prefill_done_ = true;
  prefilled_at_ = Clock::now();
  engine_.live_tokens_.store(prompt_tokens_, std::memory_order_relaxed);
  return request_.save_prompt_cache ? save_prompt_cache() : End::kFinished;
}

// When the real runtime writes the cache within a run is not documented; the emulator assumes at
// the end of prefill, before the first token (docs/emulated-runtime.md, "Prompt cache"). The save
// costs its bytes at the model's save speed, counts in prefill_time_ms, and an abort cuts it short
// like prefill, leaving the part written by then: a truncated file that does not load.
Engine::Run::End Engine::Run::save_prompt_cache() {
  const PromptCacheOwner owner = engine_.cache_owner();
  const uint64_t full = static_cast<uint64_t>(prompt_ids_.size()) * static_cast<uint64_t>(owner.kv_bytes_per_token);
  const double cost_ms = prompt_cache_transfer_ms(prompt_ids_.size(), owner.kv_bytes_per_token,
                                                  settings_.model.save_mb_per_s);
  const Clock::time_point began = Clock::now();
  const bool done = cost_ms <= 0 || engine_.sleep_until(began + from_ms(cost_ms));
  prefilled_at_ = Clock::now();
  // Cut short: short of the whole by at least a byte, so it never passes for a complete save
  // (only a save with a cost is cut, and a cost means full > 0).
  const uint64_t written =
      done ? full : std::min<uint64_t>(full - 1, static_cast<uint64_t>(static_cast<double>(full) * std::min(1.0, ms_between(began, prefilled_at_) / cost_ms)));
  std::string error;
  const bool ok = write_prompt_cache(request_.prompt_cache_path, owner, prompt_ids_, written, &error);
  if (!done) {
    if (!ok) runtime_log('E', "aborted prompt cache save: %s", error.c_str());
    return End::kAborted;
  }
  return ok ? End::kFinished : fail(error);
}

Engine::Run::End Engine::Run::emit_hidden_layer() {
  const uint64_t count = static_cast<uint64_t>(settings_.model.embedding_size) * static_cast<uint64_t>(prompt_tokens_);
  if (count > kMaxOutputFloats) return fail("last hidden layer of " + std::to_string(prompt_tokens_) + " tokens is too large");
  std::vector<float> hidden(count);
  SeedHasher seed;
  seed.add_u64(rkllm::kModeLastHiddenLayer).add(prompt_ids_.data(), prompt_ids_.size() * sizeof(int32_t));
  fill_deterministic_floats(seed.value(), hidden.data(), hidden.size());
  rkllm::Result result{};
  result.last_hidden_layer.hidden_states = hidden.data();
  result.last_hidden_layer.embd_size = settings_.model.embedding_size;
  result.last_hidden_layer.num_tokens = static_cast<int32_t>(prompt_tokens_);
  return deliver(&result, rkllm::kStateNormal) == rkllm::kPause ? End::kPaused : End::kFinished;
}

Engine::Run::End Engine::Run::emit_logits() {
  std::vector<float> logits(static_cast<size_t>(settings_.model.vocab_size));
  SeedHasher seed;
  seed.add_u64(rkllm::kModeLogits).add(prompt_ids_.data(), prompt_ids_.size() * sizeof(int32_t));
  fill_deterministic_floats(seed.value(), logits.data(), logits.size());
  rkllm::Result result{};
  result.logits.logits = logits.data();
  result.logits.vocab_size = settings_.model.vocab_size;
  result.logits.num_tokens = 1;
  return deliver(&result, rkllm::kStateNormal) == rkllm::kPause ? End::kPaused : End::kFinished;
}

Engine::Run::End Engine::Run::generate() {
  AnswerRequest answer;
  answer.has_user_text = request_.has_text;
  answer.user_text = last_turn();
  answer.is_tool_response = request_.is_tool_response;
  answer.enable_thinking = request_.enable_thinking;
  answer.tool_names = snapshot_.tools_set ? &snapshot_.tool_names : nullptr;
  answer.seed = answer_seed();
  answer.endless = settings_.ignore_eos_token;
  if (request_.input_type == rkllm::kInputMultimodal) answer.media_report = &request_.media_report;
  answer.echo_prompt = settings_.model.echo_prompt;
  answer.templated_prompt = templated_prompt_;
  TokenStream stream(make_answer_source(answer));

  const int64_t max_new = request_.max_new_tokens > 0 ? request_.max_new_tokens : settings_.max_new_tokens;
  const int64_t fault_after = settings_.model.error_after_tokens;
  const int64_t context_limit = settings_.max_context_len;
  const int32_t vocab = settings_.model.vocab_size;
  const bool paced = settings_.model.decode_ms_per_token > 0;
  const Clock::duration decode_time = from_ms(settings_.model.decode_ms_per_token);
  int64_t context_used = snapshot_.kv_used + prompt_tokens_;
  Clock::time_point last_token_at = Clock::now();
  char text[kMaxTokenBytes + 1];
  const WaitingStyle style = settings_.model.waiting;
  const bool resend = style != WaitingStyle::kPartialThenRest;
  std::string unsent;  // bytes of the WAITING tokens since the last NORMAL one

  while (true) {
    if (abort_landed()) return End::kAborted;
    if (max_new > 0 && generated_ >= max_new) return End::kFinished;
    const char* bytes;
    size_t length;
    bool incomplete;
    if (!stream.next(&bytes, &length, &incomplete)) {
      // The answer ended: the model still spends one decode step producing its end token.
      if (paced && generated_ > 0 && !engine_.sleep_until(last_token_at + decode_time)) return End::kAborted;
      return End::kFinished;
    }
    inject_process_faults();
    if (fault_after > 0 && generated_ >= fault_after) {
      return fail("injected fault after " + std::to_string(fault_after) + " tokens");
    }
    if (context_used >= context_limit) {
      return fail("context length exceeded: the KV cache is full at max_context_len " + std::to_string(context_limit));
    }
    if (paced && generated_ > 0 && !engine_.sleep_until(last_token_at + decode_time)) return End::kAborted;

    std::memcpy(text, bytes, length);
    text[length] = '\0';
    rkllm::Result result{};
    result.text = text;
    result.token_id = token_id(bytes, length, vocab);
    // In the "whole" styles the bytes of WAITING tokens are kept here and re-sent with the NORMAL
    // token that completes the character (docs/emulated-runtime.md, "The callback protocol").
    if (resend) {
      if (incomplete) {
        unsent.append(bytes, length);
        if (style == WaitingStyle::kEmptyThenWhole) result.text = "";
      } else if (!unsent.empty()) {
        unsent.append(bytes, length);
        result.text = unsent.c_str();
      }
    }
    int reply = deliver(&result, incomplete ? rkllm::kStateWaiting : rkllm::kStateNormal);
    if (resend && !incomplete) unsent.clear();
    ++generated_;
    ++context_used;
    engine_.live_tokens_.store(prompt_tokens_ + generated_, std::memory_order_relaxed);
    if (paced) last_token_at = Clock::now();
    if (reply == rkllm::kPause) return End::kPaused;
  }
}

void Engine::Run::inject_process_faults() {
  const ModelSpec& model = settings_.model;
  if (generated_ == model.crash_after_tokens) {
    runtime_log('E', "matmul(w8a8) run failed: injected crash after %lld tokens", static_cast<long long>(generated_));
    segfault_now();
  }
  if (generated_ == model.exit_after_tokens) {
    runtime_log('E', "fatal NPU error: injected exit() after %lld tokens", static_cast<long long>(generated_));
    exit_now();
  }
  if (generated_ == model.hang_after_tokens) {
    runtime_log('E', "failed to submit!, op id: 1, op name: MatMul, timeout (injected hang after %lld tokens)",
                static_cast<long long>(generated_));
    hang_forever();
  }
}

Engine::Run::End Engine::Run::execute() {
  take_snapshot();
  if (request_.has_lora && !snapshot_.lora_found) {
    return fail("LoRA adapter '" + request_.lora_name + "' is not loaded");
  }
  std::string error;
  if (!build_prompt(&error)) return fail(error);

  End end = prefill();
  if (end == End::kFinished) {
    switch (request_.mode) {
      case rkllm::kModeLastHiddenLayer: end = emit_hidden_layer(); break;
      case rkllm::kModeLogits: end = emit_logits(); break;
      default: end = generate(); break;
    }
  }
  if (end == End::kFinished || end == End::kAborted) {
    rkllm::Result result{};
    fill_perf(&result.perf);
    deliver(&result, rkllm::kStateFinish);
  }
  return end;
}

}  // namespace emu
