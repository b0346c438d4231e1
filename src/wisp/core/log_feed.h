// LogFeed: the invocation records of functions someone follows (GET /v1/functions/{id}/logs
// ?follow=true), handed over as each call ends, before the batched writer stores them. With no
// follower a call pays one check of an empty map.
//
// Thread rules: the io thread only; followers are called on it, synchronously, and must not
// block (queue what they send and return).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "wisp/common/thread_role.h"
#include "wisp/store/records.h"

namespace wisp::core {

class LogFeed {
 public:
  using Follower = std::function<void(const store::InvocationRecord& record)>;

  uint64_t Follow(const std::string& function_id, Follower follower) {
    WISP_DCHECK_ON_THREAD(io_thread_);
    const uint64_t token = next_token_++;
    followers_[function_id].emplace(token, std::move(follower));
    return token;
  }
  void Unfollow(const std::string& function_id, uint64_t token) {
    WISP_DCHECK_ON_THREAD(io_thread_);
    auto it = followers_.find(function_id);
    if (it == followers_.end()) return;
    it->second.erase(token);
    if (it->second.empty()) followers_.erase(it);
  }
  bool Follows(const std::string& function_id) const {
    return !followers_.empty() && followers_.count(function_id) > 0;
  }
  void Publish(const store::InvocationRecord& record) {
    WISP_DCHECK_ON_THREAD(io_thread_);
    auto it = followers_.find(record.function_id);
    if (it == followers_.end()) return;
    // A follower may unfollow while called (a client too slow to keep up).
    std::vector<uint64_t> tokens;
    for (const auto& [token, follower] : it->second) tokens.push_back(token);
    for (uint64_t token : tokens) {
      auto f = followers_.find(record.function_id);
      if (f == followers_.end()) return;
      if (auto g = f->second.find(token); g != f->second.end()) g->second(record);
    }
  }

 private:
  ThreadRole io_thread_;
  uint64_t next_token_ = 1;
  std::map<std::string, std::map<uint64_t, Follower>, std::less<>> followers_;
};

}  // namespace wisp::core
