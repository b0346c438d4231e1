#include "wisp/common/ids.h"

#include <chrono>
#include <cstdint>
#include <random>

#include <fmt/format.h>

namespace wisp {

std::string NewUuid() {
  // One generator per thread, seeded from the OS: no lock on the hot path.
  thread_local std::mt19937_64 generator{[] {
    std::random_device device;
    std::seed_seq seed{device(), device(), device(), device(), device(), device()};
    return std::mt19937_64(seed);
  }()};
  const auto since_epoch = std::chrono::system_clock::now().time_since_epoch();
  const auto millis = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(since_epoch).count());
  const uint64_t high = (millis << 16) | 0x7000ULL | (generator() & 0x0fffULL);        // version 7
  const uint64_t low = (generator() & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;  // variant
  return fmt::format("{:08x}-{:04x}-{:04x}-{:04x}-{:012x}", high >> 32, (high >> 16) & 0xffff,
                     high & 0xffff, low >> 48, low & 0xffffffffffffULL);
}

}  // namespace wisp
