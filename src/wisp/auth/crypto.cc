#include "wisp/auth/crypto.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sys/random.h>

#include "wisp/common/check.h"

namespace wisp::auth {
namespace {

// Fetched once: an implicit fetch by name on every digest costs more than hashing a short
// bearer token.
const EVP_MD* Sha256Md() {
  static const EVP_MD* md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  WISP_CHECK(md != nullptr);
  return md;
}

}  // namespace

Digest Sha256(std::string_view data) {
  Digest out{};
  unsigned int length = 0;
  WISP_CHECK(EVP_Digest(data.data(), data.size(), out.data(), &length, Sha256Md(), nullptr) == 1);
  return out;
}

Digest HmacSha256(std::span<const uint8_t> key, std::string_view data) {
  Digest out{};
  unsigned int length = 0;
  WISP_CHECK(HMAC(Sha256Md(), key.data(), static_cast<int>(key.size()),
                  reinterpret_cast<const unsigned char*>(data.data()), data.size(), out.data(),
                  &length) != nullptr);
  return out;
}

std::string Hex(std::span<const uint8_t> bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(bytes.size() * 2, '0');
  for (size_t i = 0; i < bytes.size(); ++i) {
    out[2 * i] = kDigits[bytes[i] >> 4];
    out[2 * i + 1] = kDigits[bytes[i] & 0xf];
  }
  return out;
}

std::string Sha256Hex(std::string_view data) { return Hex(Sha256(data)); }

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

Result<void> RandomBytes(std::span<uint8_t> out) {
  size_t filled = 0;
  while (filled < out.size()) {
    const ssize_t n = getrandom(out.data() + filled, out.size() - filled, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("getrandom");
    }
    filled += static_cast<size_t>(n);
  }
  return {};
}

}  // namespace wisp::auth
