#include "wisp/api/status_words.h"

#include <algorithm>
#include <cstdio>

#include <fmt/format.h>

#include "wisp/common/check.h"
#include "wisp/queue/queue.h"

namespace wisp::api {

StatusWords::StatusWords(std::string_view what,
                         std::vector<std::pair<std::string_view, std::string_view>> words)
    : what_(what), words_(std::move(words)) {}

std::string_view StatusWords::Word(std::string_view wisp_status) const {
  for (const auto& [status, word] : words_) {
    if (status == wisp_status) return word;
  }
  std::fprintf(stderr, "status '%.*s' has no word in %s\n", static_cast<int>(wisp_status.size()),
               wisp_status.data(), what_.c_str());
  WISP_CHECK(false);
  return {};
}

Result<std::string> StatusWords::Parse(std::string_view word) const {
  if (word.empty()) return std::string();
  for (const auto& [status, api_word] : words_) {
    if (api_word == word) return std::string(status);
  }
  // Wisp's own word is understood in every API: both appear in logs and documentation.
  for (const auto& [status, api_word] : words_) {
    if (status == word) return std::string(status);
  }
  return MakeError(ErrorCode::kInvalidArgument,
                   fmt::format("unknown status '{}' for {}: use {}", word, what_, Accepted()));
}

std::string StatusWords::Accepted() const {
  std::string out;
  std::vector<std::string_view> seen;
  for (const auto& [status, word] : words_) {
    if (std::find(seen.begin(), seen.end(), word) != seen.end()) continue;
    seen.push_back(word);
    if (!out.empty()) out += ", ";
    out += word;
  }
  return out;
}

const StatusWords& V1InvocationStatuses() {
  static const StatusWords kWords("invocations", {{queue::kQueued, queue::kQueued},
                                                  {queue::kRunning, queue::kRunning},
                                                  {queue::kSuccess, queue::kSuccess},
                                                  {queue::kDeadLetter, queue::kDeadLetter}});
  return kWords;
}

const StatusWords& V1CallStatuses() {
  static const StatusWords kWords("invocation records", {{queue::kSuccess, queue::kSuccess},
                                                         {queue::kError, queue::kError},
                                                         {queue::kTimeout, queue::kTimeout}});
  return kWords;
}

const StatusWords& ProgramInvocationStatuses() {
  // The program API's platform: an invocation waits (pending), runs, and ends completed or failed;
  // "failed" is Wisp's dead letter (retries between attempts are still pending).
  static const StatusWords kWords("program invocations", {{queue::kQueued, "pending"},
                                                          {queue::kRunning, "running"},
                                                          {queue::kSuccess, "completed"},
                                                          {queue::kDeadLetter, "failed"}});
  return kWords;
}

}  // namespace wisp::api
