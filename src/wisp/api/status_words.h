// One status vocabulary: Wisp's own words for where an invocation is (queue.h's kQueued,
// kRunning, kSuccess, kDeadLetter, and an attempt's or a synchronous call's kSuccess, kError,
// kTimeout), and for each API that says them differently, an explicit table of its words. Every
// route turns a status into its API's word and a filter back into Wisp's through here, so an
// API cannot show a word it does not document nor accept one it cannot map.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "wisp/common/result.h"

namespace wisp::api {

class StatusWords {
 public:
  // `words`: each Wisp status with the API's word for it, every Wisp status the API can show
  // exactly once. An API word may stand for more than one Wisp status only where the API does
  // not tell them apart.
  StatusWords(std::string_view what,
              std::vector<std::pair<std::string_view, std::string_view>> words);

  // The API's word for a Wisp status. A status missing from the table is a bug (CHECK).
  std::string_view Word(std::string_view wisp_status) const;
  // The Wisp status a filter word means: the API's word, or Wisp's own; kInvalidArgument
  // listing the API's words otherwise. An empty word is no filter.
  Result<std::string> Parse(std::string_view word) const;
  // The API's words, in table order, each once: "pending, running, completed, failed".
  std::string Accepted() const;

 private:
  std::string what_;
  std::vector<std::pair<std::string_view, std::string_view>> words_;
};

// /v1's async invocations (/v1/invocations, /v1/dead-letters): Wisp's own words.
const StatusWords& V1InvocationStatuses();
// /v1's invocation records (/v1/functions/:id/logs): how each call ended.
const StatusWords& V1CallStatuses();
// The program API's invocations (/invocations): pending, running, completed, failed.
const StatusWords& ProgramInvocationStatuses();

}  // namespace wisp::api
