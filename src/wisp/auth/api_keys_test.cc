#include "wisp/auth/api_keys.h"

#include <set>

#include <gtest/gtest.h>

namespace wisp::auth {
namespace {

// The ApiKeyStore contract in memory, with a switch to make it fail.
class MemoryKeyStore final : public store::ApiKeyStore {
 public:
  Result<void> PutApiKey(const store::ApiKeyRecord& key) override {
    if (failing) return MakeError(ErrorCode::kInternal, "store down");
    for (const auto& k : keys) {
      if (k.id == key.id) return MakeError(ErrorCode::kAlreadyExists, "exists");
    }
    keys.push_back(key);
    return {};
  }
  Result<std::vector<store::ApiKeyRecord>> ListApiKeys() override {
    if (failing) return MakeError(ErrorCode::kInternal, "store down");
    return keys;
  }
  Result<void> DeleteApiKey(const std::string& id) override {
    if (failing) return MakeError(ErrorCode::kInternal, "store down");
    const auto erased = std::erase_if(keys, [&id](const auto& k) { return k.id == id; });
    if (erased == 0) return MakeError(ErrorCode::kNotFound, "no such key");
    return {};
  }
  std::vector<store::ApiKeyRecord> keys;
  bool failing = false;
};

bool AllOf(std::string_view s, std::string_view alphabet) {
  return s.find_first_not_of(alphabet) == std::string_view::npos;
}

TEST(ApiKeysTest, IdsHaveTheShapeOfAwsAccessKeyIds) {
  std::set<std::string> seen;
  for (int i = 0; i < 200; ++i) {
    auto id = NewKeyId();
    ASSERT_TRUE(id);
    EXPECT_EQ(id->size(), kKeyIdLength);
    EXPECT_TRUE(id->starts_with("WK")) << *id;
    EXPECT_TRUE(AllOf(*id, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")) << *id;
    EXPECT_TRUE(CheckKey(*id, std::string(40, 'x'))) << *id;
    seen.insert(*id);
  }
  EXPECT_EQ(seen.size(), 200u);
}

TEST(ApiKeysTest, SecretsAreFortyAlphanumericsAndUseTheWholeAlphabet) {
  std::set<char> characters;
  for (int i = 0; i < 200; ++i) {
    auto secret = NewSecret();
    ASSERT_TRUE(secret);
    EXPECT_EQ(secret->size(), kSecretLength);
    EXPECT_TRUE(AllOf(*secret, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"));
    characters.insert(secret->begin(), secret->end());
  }
  // 8000 draws from 62 characters: every one shows up (a biased or stuck generator would not).
  EXPECT_EQ(characters.size(), 62u);
}

TEST(ApiKeysTest, CheckKeyRefusesWeakOrMalformedKeys) {
  const std::string good_secret(kMinConfigSecretLength, 'a');
  EXPECT_TRUE(CheckKey("WKEXAMPLE000000000000", good_secret));
  EXPECT_FALSE(CheckKey("short", good_secret));
  EXPECT_FALSE(CheckKey("WKEXAMPLE/000000000000", good_secret));  // '/' breaks a SigV4 scope
  EXPECT_FALSE(CheckKey("WKEXAMPLE000000000000", "changeme"));
  EXPECT_FALSE(CheckKey("WKEXAMPLE000000000000", good_secret + " x"));
  EXPECT_FALSE(CheckKey("WKEXAMPLE000000000000", good_secret + "\n"));
  EXPECT_FALSE(CheckKey("WKEXAMPLE000000000000", std::string(129, 'a')));
  EXPECT_TRUE(CheckDescription("deploys from CI"));
  EXPECT_FALSE(CheckDescription("line\nbreak"));
  EXPECT_FALSE(CheckDescription(std::string(257, 'a')));
}

TEST(KeySetTest, FindsByIdAndBySecret) {
  KeySet set({ApiKey{"WKAAAAAAAAAAAAAAAAAA", "secret-one-secret-one", "", 0, KeySource::kStore},
              ApiKey{"WKBBBBBBBBBBBBBBBBBB", "secret-two-secret-two", "", 0, KeySource::kConfig}});
  ASSERT_NE(set.FindById("WKAAAAAAAAAAAAAAAAAA"), nullptr);
  EXPECT_EQ(set.FindById("WKAAAAAAAAAAAAAAAAAA")->secret, "secret-one-secret-one");
  EXPECT_EQ(set.FindById("WKCCCCCCCCCCCCCCCCCC"), nullptr);
  ASSERT_NE(set.FindBySecret("secret-two-secret-two"), nullptr);
  EXPECT_EQ(set.FindBySecret("secret-two-secret-two")->id, "WKBBBBBBBBBBBBBBBBBB");
  EXPECT_EQ(set.FindBySecret("secret-two-secret-twO"), nullptr);
  EXPECT_EQ(set.FindBySecret(""), nullptr);
  EXPECT_EQ(set.FindBySecret("WKAAAAAAAAAAAAAAAAAA"), nullptr);  // an id is not a secret
}

class KeyRegistryTest : public testing::Test {
 protected:
  MemoryKeyStore store_;
  ManualClock clock_;
};

TEST_F(KeyRegistryTest, CreateStoresAndPublishesAtOnce) {
  KeyRegistry registry(store_, clock_, {});
  ASSERT_TRUE(registry.Reload());
  auto key = registry.Create("ci");
  ASSERT_TRUE(key) << key.error().message;
  ASSERT_EQ(store_.keys.size(), 1u);
  EXPECT_EQ(store_.keys[0].id, key->id);
  EXPECT_EQ(store_.keys[0].secret, key->secret);
  EXPECT_EQ(store_.keys[0].description, "ci");
  EXPECT_EQ(key->created_at_ms, ToEpochMillis(clock_.WallNow()));
  EXPECT_NE(registry.Snapshot()->FindBySecret(key->secret), nullptr);
  EXPECT_FALSE(registry.Create("bad\x01"));
}

TEST_F(KeyRegistryTest, KeysWrittenByAnotherProcessAppearOnReload) {
  KeyRegistry registry(store_, clock_, {});
  ASSERT_TRUE(registry.Reload());
  store_.keys.push_back({"WKCLICLICLICLICLICLI", "cli-secret-cli-secret", "", 5});
  EXPECT_EQ(registry.Snapshot()->FindById("WKCLICLICLICLICLICLI"), nullptr);
  ASSERT_TRUE(registry.Reload());
  EXPECT_NE(registry.Snapshot()->FindById("WKCLICLICLICLICLICLI"), nullptr);
  // ... and disappear when that process revokes them.
  store_.keys.clear();
  ASSERT_TRUE(registry.Reload());
  EXPECT_EQ(registry.Snapshot()->FindById("WKCLICLICLICLICLICLI"), nullptr);
}

TEST_F(KeyRegistryTest, AReloadThatFindsNoChangeKeepsTheSnapshot) {
  KeyRegistry registry(store_, clock_, {});
  ASSERT_TRUE(registry.Create("a"));
  const auto before = registry.Snapshot();
  ASSERT_TRUE(registry.Reload());
  EXPECT_EQ(registry.Snapshot(), before);
  store_.keys[0].description = "changed elsewhere";
  ASSERT_TRUE(registry.Reload());
  EXPECT_NE(registry.Snapshot(), before);
  EXPECT_EQ(registry.Snapshot()->keys()[0].description, "changed elsewhere");
}

TEST_F(KeyRegistryTest, RevokeDropsTheKeyAtOnce) {
  KeyRegistry registry(store_, clock_, {});
  auto key = registry.Create("");
  ASSERT_TRUE(key);
  ASSERT_TRUE(registry.Revoke(key->id));
  EXPECT_TRUE(store_.keys.empty());
  EXPECT_EQ(registry.Snapshot()->FindById(key->id), nullptr);
  EXPECT_EQ(registry.Snapshot()->FindBySecret(key->secret), nullptr);
  const auto again = registry.Revoke(key->id);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, ErrorCode::kNotFound);
}

TEST_F(KeyRegistryTest, ConfigKeysAreMergedAndCannotBeRevokedHere) {
  const ApiKey config_key{"WKCONFIGCONFIGCONFIG", "config-secret-config", "", 0,
                          KeySource::kConfig};
  // A stored key with the same id loses to the config file's.
  store_.keys.push_back({"WKCONFIGCONFIGCONFIG", "stored-secret-stored", "", 1});
  store_.keys.push_back({"WKSTOREDSTOREDSTORED", "stored-secret-other1", "", 2});
  KeyRegistry registry(store_, clock_, {config_key});
  EXPECT_NE(registry.Snapshot()->FindById("WKCONFIGCONFIGCONFIG"), nullptr);  // before Reload
  ASSERT_TRUE(registry.Reload());
  const auto snapshot = registry.Snapshot();
  EXPECT_EQ(snapshot->keys().size(), 2u);
  EXPECT_EQ(snapshot->FindById("WKCONFIGCONFIGCONFIG")->secret, "config-secret-config");
  EXPECT_EQ(snapshot->FindBySecret("stored-secret-stored"), nullptr);
  const auto revoked = registry.Revoke("WKCONFIGCONFIGCONFIG");
  ASSERT_FALSE(revoked);
  EXPECT_EQ(revoked.error().code, ErrorCode::kFailedPrecondition);
}

TEST_F(KeyRegistryTest, AFailingStoreKeepsTheLastSnapshot) {
  KeyRegistry registry(store_, clock_, {});
  auto key = registry.Create("");
  ASSERT_TRUE(key);
  store_.failing = true;
  EXPECT_FALSE(registry.Reload());
  EXPECT_NE(registry.Snapshot()->FindById(key->id), nullptr);
  EXPECT_FALSE(registry.Create(""));
}

}  // namespace
}  // namespace wisp::auth
