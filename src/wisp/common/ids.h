// Identifiers: random version-4 UUIDs for functions, invocations and instances.
#pragma once

#include <string>
#include <string_view>

namespace wisp {

// A random UUID v4 in its canonical 36-character lower-case form. Thread-safe.
std::string NewUuid();

}  // namespace wisp
