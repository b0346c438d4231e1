#include "wisp/auth/api_keys.h"

#include <algorithm>

namespace wisp::auth {
namespace {

constexpr std::string_view kUpperAlnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
constexpr std::string_view kAlnum =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
constexpr size_t kMaxKeyIdLength = 128;
constexpr size_t kMaxSecretLength = 128;
constexpr size_t kMaxDescriptionLength = 256;

// `length` characters drawn uniformly from `alphabet`: bytes at or above the largest multiple
// of the alphabet's size are drawn again, so no character is likelier than another.
Result<std::string> RandomString(std::string_view alphabet, size_t length) {
  const unsigned limit = 256 - 256 % alphabet.size();
  std::string out;
  out.reserve(length);
  std::array<uint8_t, 64> bytes{};
  while (out.size() < length) {
    if (auto r = RandomBytes(bytes); !r) return tl::unexpected(r.error());
    for (const uint8_t b : bytes) {
      if (b >= limit) continue;
      out.push_back(alphabet[b % alphabet.size()]);
      if (out.size() == length) break;
    }
  }
  return out;
}

bool IsAlnum(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

}  // namespace

Result<std::string> NewKeyId() {
  auto tail = RandomString(kUpperAlnum, kKeyIdLength - 2);
  if (!tail) return tail;
  return "WK" + *tail;
}

Result<std::string> NewSecret() { return RandomString(kAlnum, kSecretLength); }

Result<void> CheckKey(std::string_view id, std::string_view secret) {
  if (id.size() < 16 || id.size() > kMaxKeyIdLength ||
      !std::all_of(id.begin(), id.end(), IsAlnum)) {
    return MakeError(
        ErrorCode::kInvalidArgument,
        fmt::format("key id '{}' must be 16 to {} letters and digits", id, kMaxKeyIdLength));
  }
  if (secret.size() < kMinConfigSecretLength || secret.size() > kMaxSecretLength) {
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("the secret of key {} must be {} to {} characters long (`wispd "
                                 "keys create` makes a good one)",
                                 id, kMinConfigSecretLength, kMaxSecretLength));
  }
  for (const char c : secret) {
    if (c <= ' ' || c > '~') {
      return MakeError(ErrorCode::kInvalidArgument,
                       fmt::format("the secret of key {} may hold only printable ASCII characters "
                                   "and no spaces",
                                   id));
    }
  }
  return {};
}

Result<void> CheckDescription(std::string_view description) {
  if (description.size() > kMaxDescriptionLength) {
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("a key's description is at most {} bytes", kMaxDescriptionLength));
  }
  for (const char c : description) {
    if (static_cast<unsigned char>(c) < ' ' || c == 0x7f) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "a key's description may not hold control characters");
    }
  }
  return {};
}

KeySet::KeySet(std::vector<ApiKey> keys) : keys_(std::move(keys)) {
  for (const ApiKey& key : keys_) {
    by_id_.emplace(key.id, &key);
    const Digest hash = Sha256(key.secret);
    by_secret_hash_.emplace(std::string(hash.begin(), hash.end()), &key);
  }
}

const ApiKey* KeySet::FindById(std::string_view id) const {
  const auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : it->second;
}

const ApiKey* KeySet::FindBySecret(std::string_view secret) const {
  const Digest hash = Sha256(secret);
  const auto it = by_secret_hash_.find(std::string(hash.begin(), hash.end()));
  if (it == by_secret_hash_.end()) return nullptr;
  return ConstantTimeEquals(it->second->secret, secret) ? it->second : nullptr;
}

KeyRegistry::KeyRegistry(store::ApiKeyStore& store, const Clock& clock,
                         std::vector<ApiKey> config_keys)
    : store_(store), clock_(clock), config_keys_(std::move(config_keys)) {
  Publish({});
}

void KeyRegistry::Publish(std::vector<ApiKey> stored) {
  std::vector<ApiKey> all = config_keys_;
  for (ApiKey& key : stored) {
    const bool shadowed = std::any_of(config_keys_.begin(), config_keys_.end(),
                                      [&key](const ApiKey& c) { return c.id == key.id; });
    if (!shadowed) all.push_back(std::move(key));
  }
  auto next = std::make_shared<const KeySet>(std::move(all));
  std::lock_guard lock(mutex_);
  snapshot_ = std::move(next);
}

Result<void> KeyRegistry::Reload() {
  std::lock_guard update(update_mutex_);
  auto records = store_.ListApiKeys();
  if (!records) return tl::unexpected(records.error());
  std::vector<ApiKey> stored;
  stored.reserve(records->size());
  for (auto& r : *records) {
    stored.push_back(ApiKey{std::move(r.id), std::move(r.secret), std::move(r.description),
                            r.created_at_ms, KeySource::kStore});
  }
  // A stored key whose id the config file also gives is shadowed (see Publish).
  std::erase_if(stored, [this](const ApiKey& key) {
    return std::any_of(config_keys_.begin(), config_keys_.end(),
                       [&key](const ApiKey& c) { return c.id == key.id; });
  });
  // wispd reloads every second: when nothing changed, keep the snapshot instead of hashing
  // every secret again.
  const std::vector<ApiKey> current = StoredKeys();
  const auto same = [](const ApiKey& a, const ApiKey& b) {
    return a.id == b.id && a.secret == b.secret && a.description == b.description &&
           a.created_at_ms == b.created_at_ms;
  };
  if (!std::equal(stored.begin(), stored.end(), current.begin(), current.end(), same)) {
    Publish(std::move(stored));
  }
  return {};
}

Result<ApiKey> KeyRegistry::Create(std::string description) {
  if (auto checked = CheckDescription(description); !checked) {
    return tl::unexpected(checked.error());
  }
  auto id = NewKeyId();
  if (!id) return tl::unexpected(id.error());
  auto secret = NewSecret();
  if (!secret) return tl::unexpected(secret.error());
  ApiKey key{std::move(*id), std::move(*secret), std::move(description),
             ToEpochMillis(clock_.WallNow()), KeySource::kStore};
  std::lock_guard update(update_mutex_);
  if (auto put = store_.PutApiKey(
          store::ApiKeyRecord{key.id, key.secret, key.description, key.created_at_ms});
      !put) {
    return tl::unexpected(put.error());
  }
  // Usable from the next request on, without another read of the store.
  std::vector<ApiKey> stored = StoredKeys();
  stored.push_back(key);
  Publish(std::move(stored));
  return key;
}

Result<void> KeyRegistry::Revoke(const std::string& id) {
  for (const ApiKey& key : config_keys_) {
    if (key.id == id) {
      return MakeError(ErrorCode::kFailedPrecondition,
                       fmt::format("key {} is defined in the config file ([[auth.keys]]): remove "
                                   "it there and restart wispd",
                                   id));
    }
  }
  std::lock_guard update(update_mutex_);
  if (auto deleted = store_.DeleteApiKey(id); !deleted) return deleted;
  // Refused from the next request on.
  std::vector<ApiKey> stored = StoredKeys();
  std::erase_if(stored, [&id](const ApiKey& key) { return key.id == id; });
  Publish(std::move(stored));
  return {};
}

std::vector<ApiKey> KeyRegistry::StoredKeys() const {
  std::vector<ApiKey> stored;
  for (const ApiKey& key : Snapshot()->keys()) {
    if (key.source == KeySource::kStore) stored.push_back(key);
  }
  return stored;
}

std::shared_ptr<const KeySet> KeyRegistry::Snapshot() const {
  std::lock_guard lock(mutex_);
  return snapshot_;
}

}  // namespace wisp::auth
