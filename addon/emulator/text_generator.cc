#include "emulator/text_generator.h"

#include <cstring>

#include "emulator/json.h"

namespace emu {

SeedHasher& SeedHasher::add(const void* data, size_t length) {
  const unsigned char* bytes = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < length; ++i) {
    hash_ ^= bytes[i];
    hash_ *= 1099511628211ull;
  }
  return *this;
}

namespace {

uint64_t splitmix64(uint64_t* state) {
  uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Mostly plain English nouns, with enough accented, Cyrillic, Greek, CJK, Hangul and emoji words
// that most answers carry multi-byte characters split across tokens.
constexpr const char* kWords[] = {
    "river",  "stone",   "light",  "morning", "quiet",   "garden",  "signal", "paper",
    "window", "engine",  "silver", "forest",  "music",   "thread",  "harbor", "winter",
    "cloud",  "bridge",  "market", "lantern", "orbit",   "copper",  "meadow", "story",
    "circuit", "pepper", "canvas", "valley",  "tunnel",  "ember",   "puzzle", "ocean",
    "feather", "compass", "marble", "rocket", "island",  "candle",  "and",    "of",
    "the",    "with",    "under",  "beyond",  "near",    "through", "café",   "naïve",
    "Grüße",  "日本語",  "東京",   "😀",      "мир",     "θάλασσα", "façade", "jalapeño",
    "Zürich", "résumé",  "Москва", "北京",    "한국어",  "🚀",      "smörgåsbord", "niño",
};
constexpr size_t kWordCount = sizeof(kWords) / sizeof(kWords[0]);

constexpr int kMinWords = 12;
constexpr int kMaxWords = 60;

void append_capitalized(const char* word, std::string* out) {
  size_t start = out->size();
  out->append(word);
  char& first = (*out)[start];
  if (first >= 'a' && first <= 'z') first = static_cast<char>(first - 'a' + 'A');
}

// Whole text known up front (echo, tool call, tool response).
class FixedSource : public TextSource {
 public:
  explicit FixedSource(std::string text) : text_(std::move(text)) {}
  bool append_more(std::string* out) override {
    if (done_ || text_.empty()) return false;
    out->append(text_);
    done_ = true;
    return true;
  }

 private:
  std::string text_;
  bool done_ = false;
};

// "1, 2, 3, ..., N", produced a block of numbers at a time.
class CountSource : public TextSource {
 public:
  explicit CountSource(uint64_t limit) : limit_(limit) {}
  bool append_more(std::string* out) override {
    if (next_ > limit_) return false;
    char digits[24];
    for (int i = 0; i < 256 && next_ <= limit_; ++i, ++next_) {
      if (next_ > 1) out->append(", ");
      int n = 0;
      uint64_t v = next_;
      do {
        digits[n++] = static_cast<char>('0' + v % 10);
        v /= 10;
      } while (v);
      while (n) out->push_back(digits[--n]);
    }
    return true;
  }

 private:
  uint64_t limit_;
  uint64_t next_ = 1;
};

// Seeded sentences from kWords: 12 to 60 words ending with ".", or sentences forever when
// endless. An optional <think> block comes first.
class GenericSource : public TextSource {
 public:
  GenericSource(uint64_t seed, bool thinking, bool endless) : rng_(seed), thinking_(thinking), endless_(endless) {
    words_left_ = kMinWords + static_cast<int>(splitmix64(&rng_) % (kMaxWords - kMinWords + 1));
  }

  bool append_more(std::string* out) override {
    if (thinking_) {
      thinking_ = false;
      out->append("<think>\nThe question touches on ");
      out->append(pick_word());
      out->append(" and ");
      out->append(pick_word());
      out->append(", so a short answer will do.\n</think>\n\n");
      return true;
    }
    if (words_left_ <= 0) {
      if (!endless_) return false;
      words_left_ = kMaxWords;  // keep going, a sentence at a time
    }
    int length = 4 + static_cast<int>(splitmix64(&rng_) % 9);
    // Never leave a stub of fewer than four words for the last sentence.
    if (words_left_ - length < 4) length = words_left_;
    words_left_ -= length;
    if (started_) out->push_back(' ');
    started_ = true;
    for (int i = 0; i < length; ++i) {
      if (i == 0) {
        append_capitalized(pick_word(), out);
      } else {
        out->push_back(' ');
        out->append(pick_word());
      }
      if (i + 1 < length && splitmix64(&rng_) % 7 == 0) out->push_back(',');
    }
    out->push_back('.');
    return true;
  }

 private:
  const char* pick_word() { return kWords[splitmix64(&rng_) % kWordCount]; }

  uint64_t rng_;
  bool thinking_;
  bool endless_;
  bool started_ = false;
  int words_left_;
};

bool starts_with(std::string_view text, std::string_view prefix) {
  return text.size() >= prefix.size() && text.compare(0, prefix.size(), prefix) == 0;
}

// Finds "count to N" in any letter case; returns false when absent. N saturates at 10^15.
bool find_count_request(std::string_view text, uint64_t* limit) {
  static const char kPhrase[] = "count to ";
  const size_t phrase_length = sizeof(kPhrase) - 1;
  for (size_t at = 0; at + phrase_length < text.size(); ++at) {
    size_t i = 0;
    while (i < phrase_length) {
      char c = text[at + i];
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
      if (c != kPhrase[i]) break;
      ++i;
    }
    if (i < phrase_length) continue;
    size_t pos = at + phrase_length;
    if (pos >= text.size() || text[pos] < '0' || text[pos] > '9') continue;
    uint64_t value = 0;
    for (; pos < text.size() && text[pos] >= '0' && text[pos] <= '9'; ++pos) {
      if (value < 1000000000000000ull) value = value * 10 + static_cast<uint64_t>(text[pos] - '0');
    }
    *limit = value < 1000000000000000ull ? value : 1000000000000000ull;
    return true;
  }
  return false;
}

// Longest tool name that appears in the text, or nullptr.
const std::string* find_named_tool(std::string_view text, const std::vector<std::string>& names) {
  const std::string* best = nullptr;
  for (const std::string& name : names) {
    if (name.empty() || text.find(name) == std::string_view::npos) continue;
    if (!best || name.size() > best->size()) best = &name;
  }
  return best;
}

// The first max_bytes bytes of text, shortened so no UTF-8 character is cut.
std::string_view utf8_prefix(std::string_view text, size_t max_bytes) {
  if (text.size() <= max_bytes) return text;
  size_t end = max_bytes;
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;
  return text.substr(0, end);
}

void collect_names(const json::Value& value, std::vector<std::string>* names) {
  if (value.is_array()) {
    for (const json::Value& item : value.items()) collect_names(item, names);
    return;
  }
  if (!value.is_object()) return;
  for (const auto& member : value.members()) {
    if (member.first == "name" && member.second.is_string()) {
      names->push_back(member.second.as_string());
    } else if (member.first != "parameters" && member.first != "properties") {
      collect_names(member.second, names);
    }
  }
}

}  // namespace

std::unique_ptr<TextSource> make_answer_source(const AnswerRequest& request) {
  if (request.has_user_text && request.echo_prompt) return std::make_unique<FixedSource>(std::string(request.templated_prompt));
  if (request.has_user_text) {
    std::string_view text = request.user_text;
    if (request.is_tool_response) {
      std::string answer = "The tool answered \"";
      answer.append(utf8_prefix(text, 40));
      answer.append("\", and that settles it.");
      return std::make_unique<FixedSource>(std::move(answer));
    }
    if (starts_with(text, "echo: ")) return std::make_unique<FixedSource>(std::string(text.substr(6)));
    if (request.media_report && text.find("describe the media") != std::string_view::npos) {
      return std::make_unique<FixedSource>(*request.media_report);
    }
    uint64_t limit = 0;
    if (find_count_request(text, &limit)) return std::make_unique<CountSource>(limit);
    if (request.tool_names) {
      if (const std::string* name = find_named_tool(text, *request.tool_names)) {
        std::string answer = "<tool_call>\n{\"name\": ";
        json::append_quoted(*name, &answer);
        answer.append(", \"arguments\": {}}\n</tool_call>");
        return std::make_unique<FixedSource>(std::move(answer));
      }
    }
  }
  return std::make_unique<GenericSource>(request.seed, request.enable_thinking, request.endless);
}

bool extract_tool_names(std::string_view tools_json, std::vector<std::string>* names, std::string* error) {
  json::Value root = json::Value::null();
  if (!json::parse(tools_json, &root, error)) return false;
  collect_names(root, names);
  return true;
}

void fill_deterministic_floats(uint64_t seed, float* out, size_t count) {
  uint64_t state = seed;
  for (size_t i = 0; i < count; ++i) {
    // The top 24 bits give an exact float in [0, 1).
    float unit = static_cast<float>(splitmix64(&state) >> 40) * (1.0f / 16777216.0f);
    out[i] = unit * 2.0f - 1.0f;
  }
}

}  // namespace emu
