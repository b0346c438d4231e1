#include "wisp/code/code_store.h"
#include "wisp/code/tree_zip.h"
#include "wisp/code/zip_package.h"

#include <archive.h>
#include <archive_entry.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include <gtest/gtest.h>

namespace wisp::code {
namespace {
namespace fs = std::filesystem;

// One entry of a zip a test builds with libarchive's writer.
struct ZipEntry {
  std::string path;
  std::string data;
  mode_t type = AE_IFREG;
  int perm = 0644;
  std::string link_target = {};
};

la_ssize_t AppendToString(archive*, void* client, const void* buffer, size_t size) {
  static_cast<std::string*>(client)->append(static_cast<const char*>(buffer), size);
  return static_cast<la_ssize_t>(size);
}

std::string MakeZip(const std::vector<ZipEntry>& entries) {
  std::string out;
  archive* writer = archive_write_new();
  archive_write_set_format_zip(writer);
  archive_write_set_bytes_per_block(writer, 0);
  EXPECT_EQ(archive_write_open(writer, &out, nullptr, AppendToString, nullptr), ARCHIVE_OK);
  for (const auto& e : entries) {
    archive_entry* entry = archive_entry_new();
    archive_entry_set_pathname(entry, e.path.c_str());
    archive_entry_set_filetype(entry, e.type);
    archive_entry_set_perm(entry, e.perm);
    if (e.type == AE_IFLNK) archive_entry_set_symlink(entry, e.link_target.c_str());
    archive_entry_set_size(entry, e.type == AE_IFREG ? static_cast<la_int64_t>(e.data.size()) : 0);
    EXPECT_EQ(archive_write_header(writer, entry), ARCHIVE_OK) << e.path;
    if (!e.data.empty()) archive_write_data(writer, e.data.data(), e.data.size());
    archive_entry_free(entry);
  }
  archive_write_close(writer);
  archive_write_free(writer);
  return out;
}

// Sets the Unix mode (the high half of the external attributes) of every central directory
// record: libarchive's zip writer refuses to write fifos and devices, a hostile zip need not.
void PatchUnixModes(std::string& zip, uint32_t mode) {
  for (size_t at = 0; (at = zip.find("PK\x01\x02", at)) != std::string::npos; at += 4) {
    uint32_t attributes = mode << 16;
    std::memcpy(&zip[at + 38], &attributes, 4);
  }
}

std::string RandomBytes(size_t size) {
  std::mt19937 random(42);
  std::string out(size, '\0');
  for (auto& c : out) c = static_cast<char>(random());
  return out;
}

class CodeStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("wisp-code-test-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    Reopen(CodeLimits{});
  }
  void TearDown() override {
    store_.reset();
    fs::remove_all(dir_);
  }
  void Reopen(CodeLimits limits) {
    store_.reset();
    auto opened = CodeStore::Open((dir_ / "code").string(), limits);
    ASSERT_TRUE(opened) << opened.error().message;
    store_ = std::move(*opened);
  }
  // Everything under the store's directory: refusals must leave none of it.
  size_t LeftOnDisk() {
    size_t n = 0;
    for (auto it = fs::recursive_directory_iterator(dir_ / "code");
         it != fs::recursive_directory_iterator(); ++it) {
      const auto name = it->path().filename().string();
      if (it.depth() == 0 && (name == ".drafts" || name == ".trash")) continue;
      ++n;
    }
    return n;
  }
  // Expects the zip to be refused with kInvalidArgument naming `mentions`, leaving nothing.
  void ExpectRefused(const std::string& zip, const std::string& mentions) {
    auto put = store_->PutZip(zip);
    ASSERT_FALSE(put) << "accepted a zip that should have been refused (" << mentions << ")";
    EXPECT_EQ(put.error().code, ErrorCode::kInvalidArgument) << put.error().message;
    EXPECT_NE(put.error().message.find(mentions), std::string::npos) << put.error().message;
    EXPECT_EQ(LeftOnDisk(), 0u);
  }
  static mode_t ModeOf(const fs::path& path) {
    struct stat st;
    EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path;
    return st.st_mode;
  }

  fs::path dir_;
  std::unique_ptr<CodeStore> store_;
};

TEST_F(CodeStoreTest, SameContentIsOneTreeAndASecondPutWritesNothing) {
  auto first = store_->PutFile("index.js", "exports.handler = async () => 1;");
  ASSERT_TRUE(first) << first.error().message;
  EXPECT_TRUE(IsTreeHash((*first)->hash()));
  EXPECT_EQ((*first)->path(), (dir_ / "code" / (*first)->hash()).string());
  const auto inode = fs::status(fs::path((*first)->path()) / "index.js").permissions();
  auto second = store_->PutFile("index.js", "exports.handler = async () => 1;");
  ASSERT_TRUE(second);
  EXPECT_EQ((*first)->hash(), (*second)->hash());
  EXPECT_EQ(fs::status(fs::path((*second)->path()) / "index.js").permissions(), inode);
  auto other_name = store_->PutFile("app.js", "exports.handler = async () => 1;");
  auto other_code = store_->PutFile("index.js", "exports.handler = async () => 2;");
  ASSERT_TRUE(other_name && other_code);
  EXPECT_NE((*other_name)->hash(), (*first)->hash());
  EXPECT_NE((*other_code)->hash(), (*first)->hash());
  auto listed = store_->List();
  ASSERT_TRUE(listed);
  EXPECT_EQ(listed->size(), 3u);
  // The drafts of the redundant puts are gone.
  EXPECT_TRUE(fs::is_empty(dir_ / "code" / ".drafts"));
}

TEST_F(CodeStoreTest, TreesAreRootsWithCanonicalModesAndTheStoreIsPrivate) {
  auto draft = store_->NewDraft();
  ASSERT_TRUE(draft);
  ASSERT_TRUE(store_->WriteFile(**draft, "bin/tool", "#!/bin/sh\n", true));
  ASSERT_TRUE(store_->WriteFile(**draft, "lib/data.txt", "x", false));
  const fs::path setuid = fs::path((*draft)->path()) / "bin" / "tool";
  ASSERT_EQ(::chmod(setuid.c_str(), 06777), 0);
  ASSERT_EQ(::chmod((fs::path((*draft)->path()) / "lib").c_str(), 0777), 0);
  auto tree = store_->Commit(std::move(*draft));
  ASSERT_TRUE(tree) << tree.error().message;
  const fs::path root = (*tree)->path();
  EXPECT_EQ(ModeOf(root) & 07777, 0755u);
  EXPECT_EQ(ModeOf(root / "bin") & 07777, 0755u);
  EXPECT_EQ(ModeOf(root / "lib") & 07777, 0755u);
  EXPECT_EQ(ModeOf(root / "bin" / "tool") & 07777, 0755u);  // no setuid, setgid, sticky
  EXPECT_EQ(ModeOf(root / "lib" / "data.txt") & 07777, 0644u);
  EXPECT_EQ(ModeOf(dir_ / "code") & 07777, 0700u);
  struct stat st;
  ASSERT_EQ(::stat((root / "bin" / "tool").c_str(), &st), 0);
  if (::geteuid() == 0) {
    EXPECT_EQ(st.st_uid, 0u);
  }
}

TEST_F(CodeStoreTest, TheHashNamesTheContentNotTheOrderItWasWrittenIn) {
  auto a = store_->NewDraft();
  ASSERT_TRUE(a);
  ASSERT_TRUE(store_->WriteFile(**a, "x/1", "one", false));
  ASSERT_TRUE(store_->WriteFile(**a, "y", "two", true));
  auto first = store_->Commit(std::move(*a));
  auto b = store_->NewDraft();
  ASSERT_TRUE(b);
  ASSERT_TRUE(store_->WriteFile(**b, "y", "two", true));
  ASSERT_TRUE(store_->WriteFile(**b, "./x//1", "one", false));
  auto second = store_->Commit(std::move(*b));
  ASSERT_TRUE(first && second);
  EXPECT_EQ((*first)->hash(), (*second)->hash());
  // The executable bit is content: the same bytes without it are another tree.
  auto c = store_->NewDraft();
  ASSERT_TRUE(c);
  ASSERT_TRUE(store_->WriteFile(**c, "y", "two", false));
  ASSERT_TRUE(store_->WriteFile(**c, "x/1", "one", false));
  auto third = store_->Commit(std::move(*c));
  ASSERT_TRUE(third);
  EXPECT_NE((*third)->hash(), (*first)->hash());
}

TEST_F(CodeStoreTest, WriteFileRefusesPathsThatLeaveTheTree) {
  auto draft = store_->NewDraft();
  ASSERT_TRUE(draft);
  for (const char* bad : {"../x", "/etc/passwd", "a/../../x", "", "./"}) {
    auto written = store_->WriteFile(**draft, bad, "x", false);
    ASSERT_FALSE(written) << bad;
    EXPECT_EQ(written.error().code, ErrorCode::kInvalidArgument) << bad;
  }
  // Nothing is written through a link, even one the draft holds.
  fs::create_directory_symlink("/tmp", fs::path((*draft)->path()) / "out");
  auto through = store_->WriteFile(**draft, "out/x", "x", false);
  ASSERT_FALSE(through);
  EXPECT_NE(through.error().message.find("symbolic link"), std::string::npos);
}

TEST_F(CodeStoreTest, CollectKeepsHeldAndReferencedTreesAndRemovesTheRest) {
  auto held = store_->PutFile("a.js", "a");
  auto referenced = store_->PutFile("b.js", "b");
  auto dropped = store_->PutFile("c.js", "c");
  ASSERT_TRUE(held && referenced && dropped);
  const std::string referenced_hash = (*referenced)->hash();
  const std::string dropped_hash = (*dropped)->hash();
  referenced->reset();
  dropped->reset();
  auto collected = store_->Collect({referenced_hash});
  ASSERT_TRUE(collected) << collected.error().message;
  EXPECT_EQ(collected->trees, 1u);
  EXPECT_EQ(collected->bytes, 1u);
  EXPECT_TRUE(fs::exists((*held)->path()));
  EXPECT_TRUE(fs::exists(dir_ / "code" / referenced_hash));
  EXPECT_FALSE(fs::exists(dir_ / "code" / dropped_hash));
  EXPECT_EQ(store_->Acquire(dropped_hash).error().code, ErrorCode::kNotFound);
  // Two handles of one tree: it stays until the last goes.
  auto again = store_->Acquire((*held)->hash());
  ASSERT_TRUE(again);
  const std::string held_hash = (*held)->hash();
  held->reset();
  ASSERT_TRUE(store_->Collect({}));
  EXPECT_TRUE(fs::exists(dir_ / "code" / held_hash));
  again->reset();
  ASSERT_TRUE(store_->Collect({}));
  EXPECT_FALSE(fs::exists(dir_ / "code" / held_hash));
  EXPECT_TRUE(fs::is_empty(dir_ / "code" / ".trash"));
  EXPECT_EQ(store_->Acquire("../etc").error().code, ErrorCode::kInvalidArgument);
}

// A deploy's put races collections of the tree it is about to hold (the same content was
// unheld a moment before): the handle it gets always names a tree that is there.
TEST_F(CodeStoreTest, APutRacingCollectionsAlwaysHoldsATreeThatExists) {
  std::atomic<bool> done{false};
  std::thread collector([&] {
    while (!done) ASSERT_TRUE(store_->Collect({}));
  });
  int missing = 0;
  for (int i = 0; i < 200; ++i) {
    auto tree = store_->PutFile("index.js", "exports.handler = () => 1;");
    ASSERT_TRUE(tree) << tree.error().message;
    if (!fs::exists(fs::path((*tree)->path()) / "index.js")) ++missing;
    auto again = store_->Acquire((*tree)->hash());
    if (!again || !fs::exists((*again)->path())) ++missing;
  }
  done = true;
  collector.join();
  EXPECT_EQ(missing, 0);
  ASSERT_TRUE(store_->Collect({}));
  EXPECT_TRUE(store_->List()->empty());
}

TEST_F(CodeStoreTest, APutOfACollectedTreeMakesItAnew) {
  auto first = store_->PutFile("a.js", "a");
  ASSERT_TRUE(first);
  const std::string hash = (*first)->hash();
  first->reset();
  ASSERT_TRUE(store_->Collect({}));
  auto second = store_->PutFile("a.js", "a");
  ASSERT_TRUE(second);
  EXPECT_EQ((*second)->hash(), hash);
  std::ifstream in(fs::path((*second)->path()) / "a.js");
  std::string text;
  in >> text;
  EXPECT_EQ(text, "a");
}

TEST_F(CodeStoreTest, OpenRemovesDraftsAndTrashALastRunLeft) {
  auto draft = store_->NewDraft();
  ASSERT_TRUE(draft);
  ASSERT_TRUE(store_->WriteFile(**draft, "half.js", "half", false));
  const std::string path = (*draft)->path();
  // A crash: the draft object is never destroyed.
  [[maybe_unused]] Draft* leaked = draft->release();
  ASSERT_TRUE(fs::exists(path));
  Reopen(CodeLimits{});
  EXPECT_FALSE(fs::exists(path));
  EXPECT_EQ(LeftOnDisk(), 0u);
}

TEST_F(CodeStoreTest, ImportCopiesAnOlderWispdsVersionDirectory) {
  const fs::path old = dir_ / "functions" / "f" / "v1";
  fs::create_directories(old / "src");
  std::ofstream(old / "src" / "app.py") << "def main(e, c): return 1\n";
  std::ofstream(old / "function") << "binary";
  fs::permissions(old / "function", fs::perms::owner_all);
  auto tree = store_->Import(old.string());
  ASSERT_TRUE(tree) << tree.error().message;
  EXPECT_TRUE(fs::exists(fs::path((*tree)->path()) / "src" / "app.py"));
  EXPECT_EQ(ModeOf(fs::path((*tree)->path()) / "function") & 07777, 0755u);
}

TEST_F(CodeStoreTest, Sha256IsLambdasCodeSha256) {
  // echo -n abc | sha256sum; | base64 of the digest
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(Sha256Base64("abc"), "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=");
}

// Zip packages.

TEST_F(CodeStoreTest, AZipPackageBecomesATreeWithItsDependenciesAndExecutables) {
  const std::string zip = MakeZip({
      {"index.js", "const d = require('dep'); exports.handler = async () => d.value;"},
      {"node_modules/", "", AE_IFDIR, 0755},
      {"node_modules/dep/package.json", R"({"name":"dep","main":"lib/main.js"})"},
      {"node_modules/dep/lib/main.js", "exports.value = 42;"},
      {"node_modules/.bin/dep", "", AE_IFLNK, 0777, "../dep/lib/main.js"},
      {"bootstrap", "#!/bin/sh\necho hi\n", AE_IFREG, 0755},
      {"./src/app/__init__.py", ""},
  });
  auto tree = store_->PutZip(zip);
  ASSERT_TRUE(tree) << tree.error().message;
  const fs::path root = (*tree)->path();
  EXPECT_TRUE(fs::is_regular_file(root / "node_modules" / "dep" / "lib" / "main.js"));
  EXPECT_EQ(ModeOf(root / "bootstrap") & 07777, 0755u);
  EXPECT_EQ(ModeOf(root / "index.js") & 07777, 0644u);
  EXPECT_TRUE(fs::is_symlink(root / "node_modules" / ".bin" / "dep"));
  EXPECT_EQ(fs::read_symlink(root / "node_modules" / ".bin" / "dep"), "../dep/lib/main.js");
  EXPECT_TRUE(fs::exists(root / "src" / "app" / "__init__.py"));
  // The same zip again: the same tree.
  auto again = store_->PutZip(zip);
  ASSERT_TRUE(again);
  EXPECT_EQ((*again)->hash(), (*tree)->hash());
}

TEST_F(CodeStoreTest, ZipSlipIsRefused) {
  ExpectRefused(MakeZip({{"ok.js", "x"}, {"../evil.js", "x"}}), "../evil.js");
  ExpectRefused(MakeZip({{"a/../../evil.js", "x"}}), "..");
  EXPECT_FALSE(fs::exists(dir_ / "code" / "evil.js"));
  EXPECT_FALSE(fs::exists(dir_ / "evil.js"));
}

TEST_F(CodeStoreTest, AbsolutePathsAreRefused) {
  ExpectRefused(MakeZip({{"/tmp/wisp-evil.js", "x"}}), "absolute");
  EXPECT_FALSE(fs::exists("/tmp/wisp-evil.js"));
}

TEST_F(CodeStoreTest, SymbolicLinksOutOfTheTreeAreRefused) {
  ExpectRefused(MakeZip({{"passwd", "", AE_IFLNK, 0777, "/etc/passwd"}}), "absolute path");
  ExpectRefused(MakeZip({{"up", "", AE_IFLNK, 0777, "../../etc/passwd"}}), "outside");
  ExpectRefused(MakeZip({{"a/b/up", "", AE_IFLNK, 0777, "../../.."}}), "outside");
  // Each link on its own stays inside; together they climb out ("here" is the root, so
  // "here/.." is its parent).
  ExpectRefused(
      MakeZip({{"here", "", AE_IFLNK, 0777, "."}, {"out", "", AE_IFLNK, 0777, "here/.."}}), "out");
  // A file written through a link the zip made earlier.
  ExpectRefused(
      MakeZip({{"d", "", AE_IFLNK, 0777, "sub"}, {"sub/", "", AE_IFDIR, 0755}, {"d/file", "x"}}),
      "symbolic link");
}

TEST_F(CodeStoreTest, SymbolicLinkLoopsAreRefused) {
  ExpectRefused(MakeZip({{"a", "", AE_IFLNK, 0777, "b"}, {"b", "", AE_IFLNK, 0777, "a"}}), "loop");
  ExpectRefused(MakeZip({{"self", "", AE_IFLNK, 0777, "self/x"}}), "loop");
}

TEST_F(CodeStoreTest, AZipBombStopsAtTheUnzippedLimit) {
  CodeLimits limits;
  limits.max_unzipped_bytes = 1 << 20;
  Reopen(limits);
  const std::string zip = MakeZip({{"small.txt", "x"}, {"bomb.bin", std::string(8 << 20, '\0')}});
  ASSERT_LT(zip.size(), 64u << 10);  // highly compressible: the ratio is what makes it a bomb
  ExpectRefused(zip, "bomb.bin");
  // Many entries each under the limit, together over it.
  std::vector<ZipEntry> many;
  for (int i = 0; i < 8; ++i)
    many.push_back({"part" + std::to_string(i), std::string(200 << 10, 'a')});
  ExpectRefused(MakeZip(many), "exceeds");
}

TEST_F(CodeStoreTest, TooManyEntriesAndTooLargeZipsAreRefused) {
  CodeLimits limits;
  limits.max_entries = 10;
  limits.max_zip_bytes = 4096;
  Reopen(limits);
  std::vector<ZipEntry> entries;
  for (int i = 0; i < 11; ++i) entries.push_back({"f" + std::to_string(i), "x"});
  ExpectRefused(MakeZip(entries), "more than 10 entries");
  ExpectRefused(MakeZip({{"big", RandomBytes(8192)}}), "over the limit");
}

TEST_F(CodeStoreTest, CorruptTruncatedAndNonZipInputIsRefused) {
  const std::string good = MakeZip({{"index.js", RandomBytes(4096)}, {"b.js", "b"}});
  ExpectRefused(good.substr(0, good.size() / 2), "invalid zip");
  // Inside the first file's data (after its local header, name and extra field): its checksum
  // no longer matches.
  std::string corrupt = good;
  const size_t data = 30 + static_cast<unsigned char>(good[26]) +
                      static_cast<unsigned char>(good[28]) +
                      256 * static_cast<unsigned char>(good[29]);
  corrupt[data + 100] ^= 0x5a;
  corrupt[data + 101] ^= 0x5a;
  ExpectRefused(corrupt, "index.js");
  ExpectRefused("this is not a zip, only text", "invalid zip");
  ExpectRefused(std::string(), "empty");
  ExpectRefused(MakeZip({}), "no entries");
}

TEST_F(CodeStoreTest, DuplicateEntriesAreRefused) {
  ExpectRefused(MakeZip({{"index.js", "one"}, {"index.js", "two"}}), "twice");
  ExpectRefused(MakeZip({{"lib/", "", AE_IFDIR, 0755}, {"./lib", "", AE_IFDIR, 0755}}), "twice");
  ExpectRefused(MakeZip({{"a", "file"}, {"a/b", "x"}}), "a/b");
}

// libarchive's zip reader reports a fifo's or a device's Unix mode as a regular file (the zip
// holds only bytes for it); UnpackZipInto refuses any other type it could report.
TEST_F(CodeStoreTest, FifoAndDeviceModesNeverMakeSpecialFiles) {
  for (const mode_t type : {S_IFIFO, S_IFBLK, S_IFCHR, S_IFSOCK}) {
    std::string zip = MakeZip({{"special", "x"}});
    PatchUnixModes(zip, type | 04755);
    auto tree = store_->PutZip(zip);
    if (!tree) {
      EXPECT_EQ(tree.error().code, ErrorCode::kInvalidArgument);
      EXPECT_NE(tree.error().message.find("special"), std::string::npos);
      continue;
    }
    const mode_t mode = ModeOf(fs::path((*tree)->path()) / "special");
    EXPECT_TRUE(S_ISREG(mode)) << std::oct << mode;
    EXPECT_EQ(mode & 07000, 0u) << "setuid survived: " << std::oct << mode;
  }
}

}  // namespace
}  // namespace wisp::code

namespace wisp::code {
namespace {

TEST_F(CodeStoreTest, ZipTreePacksATreeBackIntoTheSameTree) {
  auto tree =
      store_->PutZip(MakeZip({{"index.js", "exports.handler = () => 1;"},
                              {"bin/", "", AE_IFDIR, 0755},
                              {"bin/tool", "#!/bin/sh\n", AE_IFREG, 0755},
                              {"node_modules/.bin/tool", "", AE_IFLNK, 0777, "../../bin/tool"}}));
  ASSERT_TRUE(tree) << tree.error().message;
  auto zipped = ZipTree((*tree)->path());
  ASSERT_TRUE(zipped) << zipped.error().message;
  // Same content, same bytes: the download does not change from one call to the next.
  EXPECT_EQ(*ZipTree((*tree)->path()), *zipped);
  auto again = store_->PutZip(*zipped);
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ((*again)->hash(), (*tree)->hash());
}

TEST(PackageRefusal, NamesTheRefusalsOfAPackageOnly) {
  EXPECT_TRUE(IsPackageRefusal(
      Error{ErrorCode::kInvalidArgument, "invalid zip file: not a readable zip: x"}));
  EXPECT_TRUE(IsPackageRefusal(Error{ErrorCode::kInvalidArgument, "zip entry '../a': no"}));
  EXPECT_FALSE(IsPackageRefusal(Error{ErrorCode::kInvalidArgument, "runtime is required"}));
  EXPECT_FALSE(IsPackageRefusal(Error{ErrorCode::kInternal, "invalid zip file: disk full"}));
}

}  // namespace
}  // namespace wisp::code
