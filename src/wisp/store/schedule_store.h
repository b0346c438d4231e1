// ScheduleStore: which slot of each schedule fired last. The store decides, so that of several
// wispd sharing it exactly one fires each slot: a node fires a slot only after its
// compare-and-set from the last slot it read to the new one succeeded. A separate interface
// from Store (as ApiKeyStore); SqliteStore implements it in the same database.
//
// Thread rules: implementations are thread-safe; every method blocks on disk, so callers on an
// io thread must run them on the worker pool.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "wisp/common/result.h"

namespace wisp::store {

class ScheduleStore {
 public:
  virtual ~ScheduleStore() = default;

  // The last slot (epoch ms) the schedule fired or was armed at; nullopt if none is stored.
  virtual Result<std::optional<int64_t>> LastFiring(const std::string& function_id,
                                                    const std::string& schedule) = 0;
  // Moves the schedule's last slot from `expected` to `slot_ms` if it is still `expected`
  // (nullopt: no row yet); true if this call did, false if someone else changed it first.
  // kNotFound if the function is gone.
  virtual Result<bool> ClaimFiring(const std::string& function_id, const std::string& schedule,
                                   std::optional<int64_t> expected, int64_t slot_ms) = 0;
  // Forgets the schedule's last slot (disabled or removed: it starts afresh when it returns).
  virtual Result<void> ForgetFiring(const std::string& function_id,
                                    const std::string& schedule) = 0;
};

}  // namespace wisp::store
