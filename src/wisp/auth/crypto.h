// The few cryptographic primitives authentication needs, over OpenSSL's libcrypto: SHA-256,
// HMAC-SHA256, a constant-time comparison and random bytes from the kernel's CSPRNG.
//
// Thread rules: any thread.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "wisp/common/result.h"

namespace wisp::auth {

using Digest = std::array<uint8_t, 32>;

Digest Sha256(std::string_view data);
Digest HmacSha256(std::span<const uint8_t> key, std::string_view data);
// Lower-case hex, as SigV4 writes hashes and signatures.
std::string Hex(std::span<const uint8_t> bytes);
std::string Sha256Hex(std::string_view data);

// Compares in time that depends on the lengths only, never on where the bytes differ.
bool ConstantTimeEquals(std::string_view a, std::string_view b);

// Bytes from getrandom(2), the kernel's CSPRNG (blocks only before it is seeded at boot).
Result<void> RandomBytes(std::span<uint8_t> out);

}  // namespace wisp::auth
