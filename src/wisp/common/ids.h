// Identifiers: time-ordered UUIDs (version 7) for functions, invocations and instances.
#pragma once

#include <string>

namespace wisp {

// A UUID v7 in its canonical 36-character lower-case form: 48 bits of Unix milliseconds, then
// 74 random bits. Ids made later sort after earlier ones (to the millisecond of the wall clock),
// so an index on them grows at its right edge instead of touching a random B-tree page per
// insert; the random bits keep them unique. Thread-safe.
std::string NewUuid();

}  // namespace wisp
