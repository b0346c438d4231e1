// API keys: their format, how new ones are made, and the registry that answers "whose secret
// is this?" on every request.
//
// A key is an id and a secret. The id has the shape of an AWS access key id ("WK" and 18
// upper-case letters and digits) so that AWS SDKs and tools take it as one; the secret is 40
// letters and digits from the kernel's CSPRNG (238 bits). Keys live in the Store (the source
// of truth); keys written in the config file ([[auth.keys]]) are added to them in memory.
//
// Thread rules: KeyRegistry is thread-safe. Reload, Create and Revoke block on the store (run
// them on the worker pool); Snapshot never blocks and is what the request path reads.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "wisp/auth/crypto.h"
#include "wisp/common/clock.h"
#include "wisp/common/result.h"
#include "wisp/store/api_key_store.h"

namespace wisp::auth {

constexpr size_t kKeyIdLength = 20;
constexpr size_t kSecretLength = 40;
// A secret given in the config file must be at least this long: a short word typed by hand
// would be guessable, and SigV4 gives an attacker an offline oracle for it.
constexpr size_t kMinConfigSecretLength = 20;

enum class KeySource { kStore, kConfig };

struct ApiKey {
  std::string id;
  std::string secret;
  std::string description;
  int64_t created_at_ms = 0;  // 0 for keys of the config file
  KeySource source = KeySource::kStore;
};

// A new id: "WK" + 18 characters of [A-Z0-9].
Result<std::string> NewKeyId();
// A new secret: 40 characters of [A-Za-z0-9].
Result<std::string> NewSecret();

// Whether a key given by a person (the config file) may be used, and why not. Ids are 16 to
// 128 letters and digits (AWS's access key id rule, which also keeps '/' out of a SigV4
// credential scope); secrets at least kMinConfigSecretLength printable ASCII characters
// without spaces (they travel in an HTTP header).
Result<void> CheckKey(std::string_view id, std::string_view secret);
// A description: at most 256 characters, no control characters.
Result<void> CheckDescription(std::string_view description);

// The keys at one moment, indexed for the two questions the request path asks.
class KeySet {
 public:
  explicit KeySet(std::vector<ApiKey> keys);

  // The key with this id (SigV4 names the key), or nullptr.
  const ApiKey* FindById(std::string_view id) const;
  // The key whose secret this is (a bearer token names only the secret), or nullptr. The
  // token is hashed and the hash looked up, then the secret compared in constant time: the
  // lookup's timing depends on the hash, which tells nothing about any stored secret.
  const ApiKey* FindBySecret(std::string_view secret) const;
  const std::vector<ApiKey>& keys() const { return keys_; }

 private:
  std::vector<ApiKey> keys_;
  std::unordered_map<std::string_view, const ApiKey*> by_id_;
  std::unordered_map<std::string, const ApiKey*> by_secret_hash_;
};

// What Create returns: the key, whose secret is shown this once.
struct CreatedKey {
  ApiKey key;
};

class KeyRegistry {
 public:
  // `config_keys` must have passed CheckKey. Starts with the config's keys only: call Reload
  // before serving.
  KeyRegistry(store::ApiKeyStore& store, const Clock& clock, std::vector<ApiKey> config_keys);

  // Reads the stored keys and replaces the snapshot (keys of the config file win over a
  // stored key with the same id). Blocks.
  Result<void> Reload();
  // Makes, stores and adds a key. Blocks.
  Result<ApiKey> Create(std::string description);
  // Deletes a stored key; the snapshot drops it at once. A config file's key is
  // kFailedPrecondition (it comes back at every start: remove it from the file). Blocks.
  Result<void> Revoke(const std::string& id);

  std::shared_ptr<const KeySet> Snapshot() const;

 private:
  void Publish(std::vector<ApiKey> stored);
  // The stored keys of the current snapshot (without the config file's).
  std::vector<ApiKey> StoredKeys() const;

  store::ApiKeyStore& store_;
  const Clock& clock_;
  const std::vector<ApiKey> config_keys_;
  // Held across a store operation and the publication of its result, so that a reload that
  // read the store before a revocation cannot publish the revoked key after it.
  std::mutex update_mutex_;
  mutable std::mutex mutex_;
  std::shared_ptr<const KeySet> snapshot_;  // guarded by mutex_
};

}  // namespace wisp::auth
