#include "wisp/common/ids.h"

#include <chrono>
#include <cstdint>
#include <random>
#include <string>

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
  // 8-4-4-4-12 hex digits, written by hand: fmt's parsing of five specs cost more than the rest
  // of this on every call.
  std::string id(36, '-');
  constexpr char kHex[] = "0123456789abcdef";
  const auto put = [&id, &kHex](size_t at, uint64_t value, int digits) {
    for (int i = digits - 1; i >= 0; --i, value >>= 4) id[at + i] = kHex[value & 0xf];
  };
  put(0, high >> 32, 8);
  put(9, (high >> 16) & 0xffff, 4);
  put(14, high & 0xffff, 4);
  put(19, low >> 48, 4);
  put(24, low & 0xffffffffffffULL, 12);
  return id;
}

}  // namespace wisp
