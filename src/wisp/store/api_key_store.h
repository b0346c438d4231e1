// ApiKeyStore: where the API keys that authenticate callers last (the Store is the source of
// truth for keys, as for functions). A separate interface from Store so that parts which only
// authenticate see nothing else; SqliteStore implements both, in one database.
//
// Thread rules: implementations are thread-safe; every method blocks on disk, so callers on an
// io thread must run them on the worker pool.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "wisp/common/result.h"

namespace wisp::store {

// One key. SigV4 verification needs the secret itself (it is the HMAC key), so the secret is
// stored, in the owner-only database; a revoked key's row is deleted, secret and all.
struct ApiKeyRecord {
  std::string id;  // "WK" + 18 upper-case letters and digits, like an AWS access key id
  std::string secret;
  std::string description;
  int64_t created_at_ms = 0;
};

class ApiKeyStore {
 public:
  virtual ~ApiKeyStore() = default;

  // Adds a key. An id already stored is kAlreadyExists.
  virtual Result<void> PutApiKey(const ApiKeyRecord& key) = 0;
  // Every stored key, oldest first.
  virtual Result<std::vector<ApiKeyRecord>> ListApiKeys() = 0;
  // Deletes the key. An unknown id is kNotFound.
  virtual Result<void> DeleteApiKey(const std::string& id) = 0;
};

}  // namespace wisp::store
