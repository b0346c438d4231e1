// HostIdPool: the host uids sandboxes are created from, one per live instance (see
// LauncherOptions::sandbox_id_base), and the checks that a configured range is safe to use.
//
// Thread rules: a plain value, used by the single-threaded launcher only.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "wisp/common/result.h"

namespace wisp::sandbox {

class HostIdPool {
 public:
  // [base, base + count); the caller validated it (ValidateHostIdRange).
  HostIdPool(uint32_t base, uint32_t count) : base_(base), used_(count, false) {}

  // A free id, or nullopt when every id of the range belongs to a live instance. Ids are handed
  // out round robin, so a released id is reused as late as possible: whatever the kernel still
  // holds for a uid when its instance ends (an fd passed out, a message in flight) is long gone
  // before another instance gets it.
  std::optional<uint32_t> Acquire() {
    for (size_t tried = 0; tried < used_.size(); ++tried) {
      const size_t slot = next_;
      next_ = (next_ + 1) % used_.size();
      if (!used_[slot]) {
        used_[slot] = true;
        ++in_use_;
        return base_ + static_cast<uint32_t>(slot);
      }
    }
    return std::nullopt;
  }

  // Gives back an id from Acquire(); ids outside the range, or not in use, are ignored.
  void Release(uint32_t id) {
    if (id < base_ || id - base_ >= used_.size() || !used_[id - base_]) return;
    used_[id - base_] = false;
    --in_use_;
  }

  size_t in_use() const { return in_use_; }

 private:
  uint32_t base_;
  std::vector<bool> used_;
  size_t next_ = 0;
  size_t in_use_ = 0;
};

// The range must hold at least one id, stay clear of the ids below 65536 (root, system and
// regular users, nobody) and end below 4294967295 ((uid_t)-1, which means "no change").
Result<void> ValidateHostIdRange(uint32_t base, uint32_t count);

// Fails when an entry of `text`, the contents of `file_name` in /etc/subuid or /etc/subgid
// format ("name:first:count" per line), overlaps the range: those ids belong to a user's
// rootless containers.
Result<void> CheckSubordinateIds(std::string_view file_name, std::string_view text, uint32_t base,
                                 uint32_t count);

// Fails when an entry of `text`, the contents of `file_name` in /etc/passwd or /etc/group
// format (the id is the third field), has an id inside the range: it belongs to someone.
Result<void> CheckAccountIds(std::string_view file_name, std::string_view text, uint32_t base,
                             uint32_t count);

}  // namespace wisp::sandbox
