#include "wisp/core/go_builder.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

namespace wisp::core {
namespace {
namespace fs = std::filesystem;

// An id that owns nothing on a test machine, standing in for the build uid.
constexpr uid_t kBuildUid = 65533;
constexpr gid_t kBuildGid = 65533;

std::string Read(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

void Write(const fs::path& path, const std::string& text, mode_t mode) {
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << text;
  }
  ASSERT_EQ(::chmod(path.c_str(), mode), 0);
}

struct stat Lstat(const fs::path& path) {
  struct stat st {};
  EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path;
  return st;
}

// A build's work directory as GoBuilder leaves it when the sandbox has ended: root's and 0700,
// with out/ the build uid's, and a root-only secret elsewhere that the build must not obtain.
class TakeBuildOutputTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "changes file owners: needs root";
    char templ[] = "/tmp/wisp-go-build-test-XXXXXX";
    ASSERT_NE(::mkdtemp(templ), nullptr);
    root_ = templ;
    work_ = root_ / "work";
    out_ = work_ / "out";
    ASSERT_EQ(::mkdir(work_.c_str(), 0700), 0);
    ASSERT_EQ(::mkdir(out_.c_str(), 0700), 0);
    ASSERT_EQ(::chown(out_.c_str(), kBuildUid, kBuildGid), 0);
    secret_ = root_ / "secret";
    Write(secret_, "root-only secret", 0600);
    target_ = root_ / "function";
  }
  void TearDown() override {
    std::error_code ec;
    if (!root_.empty()) fs::remove_all(root_, ec);
  }

  // A file the build wrote.
  void PlantBinary(const std::string& content) {
    Write(out_ / "function", content, 0755);
    ASSERT_EQ(::chown((out_ / "function").c_str(), kBuildUid, kBuildGid), 0);
  }

  Result<void> Take() { return TakeBuildOutput(work_.string(), kBuildUid, target_.string()); }

  void ExpectNothingCopied() {
    EXPECT_FALSE(fs::exists(target_));
    EXPECT_FALSE(fs::exists(target_.string() + ".tmp"));
  }

  fs::path root_, work_, out_, secret_, target_;
};

TEST_F(TakeBuildOutputTest, CopiesTheBuildsBinaryAsRootsExecutable) {
  PlantBinary(
      "\x7f"
      "ELF binary");
  auto taken = Take();
  ASSERT_TRUE(taken) << taken.error().message;
  EXPECT_EQ(Read(target_),
            "\x7f"
            "ELF binary");
  const struct stat st = Lstat(target_);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(st.st_uid, 0u);
  EXPECT_EQ(st.st_mode & 07777, 0755u);
  // The build's directory is root's before anything in it is opened.
  const struct stat out = Lstat(out_);
  EXPECT_EQ(out.st_uid, 0u);
  EXPECT_EQ(out.st_mode & 07777, 0700u);
}

// The attack of issue 10 finding 2: the build's output swapped for a symlink to a file only
// root may read. The copy must refuse it, not follow it.
TEST_F(TakeBuildOutputTest, RefusesASymlinkToARootOnlyFile) {
  ASSERT_EQ(::symlink(secret_.c_str(), (out_ / "function").c_str()), 0);
  auto taken = Take();
  ASSERT_FALSE(taken);
  EXPECT_NE(taken.error().message.find("symbolic link"), std::string::npos)
      << taken.error().message;
  ExpectNothingCopied();
}

TEST_F(TakeBuildOutputTest, RefusesAnOutputDirectoryThatIsASymlink) {
  PlantBinary("binary");
  const fs::path elsewhere = root_ / "elsewhere";
  fs::rename(out_, elsewhere);
  ASSERT_EQ(::symlink(elsewhere.c_str(), out_.c_str()), 0);
  EXPECT_FALSE(Take());
  ExpectNothingCopied();
  // Not taken over either: the link's target keeps its owner.
  EXPECT_EQ(Lstat(elsewhere).st_uid, kBuildUid);
}

TEST_F(TakeBuildOutputTest, RefusesAHardLinkToAnotherFile) {
  ASSERT_EQ(::link(secret_.c_str(), (out_ / "function").c_str()), 0);
  auto taken = Take();
  ASSERT_FALSE(taken);
  ExpectNothingCopied();
  // Even one the build uid owns, when it has a second name elsewhere.
  ASSERT_EQ(::unlink((out_ / "function").c_str()), 0);
  PlantBinary("binary");
  ASSERT_EQ(::link((out_ / "function").c_str(), (root_ / "second-name").c_str()), 0);
  EXPECT_FALSE(Take());
  ExpectNothingCopied();
}

TEST_F(TakeBuildOutputTest, RefusesAFileTheBuildDidNotCreate) {
  Write(out_ / "function", "root's own file", 0755);  // owner root, not the build uid
  EXPECT_FALSE(Take());
  ExpectNothingCopied();
}

TEST_F(TakeBuildOutputTest, RefusesAFifoWithoutBlocking) {
  ASSERT_EQ(::mkfifo((out_ / "function").c_str(), 0644), 0);
  auto taken = Take();
  ASSERT_FALSE(taken);
  EXPECT_NE(taken.error().message.find("not a regular file"), std::string::npos);
  ExpectNothingCopied();
}

TEST_F(TakeBuildOutputTest, SaysWhenTheBuildLeftNoBinary) {
  auto taken = Take();
  ASSERT_FALSE(taken);
  EXPECT_NE(taken.error().message.find("no binary"), std::string::npos);
}

TEST_F(TakeBuildOutputTest, RefusesAWorkDirectoryOthersCouldChange) {
  PlantBinary("binary");
  ASSERT_EQ(::chmod(work_.c_str(), 0755), 0);
  EXPECT_FALSE(Take());
  ASSERT_EQ(::chmod(work_.c_str(), 0700), 0);
  ASSERT_EQ(::chown(work_.c_str(), kBuildUid, kBuildGid), 0);
  EXPECT_FALSE(Take());
  ExpectNothingCopied();
}

class PrepareBuildDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "changes file owners: needs root";
    char templ[] = "/tmp/wisp-go-build-dir-test-XXXXXX";
    ASSERT_NE(::mkdtemp(templ), nullptr);
    root_ = templ;
    settings_.build_dir = (root_ / "build").string();
    settings_.uid = kBuildUid;
    settings_.gid = kBuildGid;
  }
  void TearDown() override {
    std::error_code ec;
    if (!root_.empty()) fs::remove_all(root_, ec);
  }
  fs::path build() const { return settings_.build_dir; }

  fs::path root_;
  GoBuildSettings settings_;
};

// The cache has one writer (the build uid) and no other local user can reach it: its parent is
// root's with mode 0700.
TEST_F(PrepareBuildDirTest, MakesTheCacheTheBuildUidsBehindARootOnlyDirectory) {
  ASSERT_TRUE(PrepareBuildDir(settings_));
  const struct stat dir = Lstat(build());
  EXPECT_TRUE(S_ISDIR(dir.st_mode));
  EXPECT_EQ(dir.st_uid, 0u);
  EXPECT_EQ(dir.st_mode & 07777, 0700u);
  const struct stat cache = Lstat(build() / "go");
  EXPECT_EQ(cache.st_uid, kBuildUid);
  EXPECT_EQ(cache.st_gid, kBuildGid);
  EXPECT_EQ(cache.st_mode & 07777, 0700u);
  const struct stat work = Lstat(build() / "work");
  EXPECT_EQ(work.st_uid, 0u);
  EXPECT_EQ(work.st_mode & 07777, 0700u);
}

TEST_F(PrepareBuildDirTest, TightensAnExistingDirectoryAndKeepsAGoodCache) {
  ASSERT_TRUE(PrepareBuildDir(settings_));
  Write(build() / "go" / "cached", "kept", 0600);
  // An older layout: a world-readable build dir with a build directory of the sandbox uid.
  ASSERT_EQ(::chmod(build().c_str(), 0755), 0);
  ASSERT_EQ(::mkdir((build() / "f-v1").c_str(), 0755), 0);
  ASSERT_EQ(::chown((build() / "f-v1").c_str(), 65534, 65534), 0);
  Write(build() / "work" / "leftover", "x", 0644);
  ASSERT_TRUE(PrepareBuildDir(settings_));
  EXPECT_EQ(Lstat(build()).st_mode & 07777, 0700u);
  EXPECT_EQ(Read(build() / "go" / "cached"), "kept");
  EXPECT_FALSE(fs::exists(build() / "f-v1"));
  EXPECT_FALSE(fs::exists(build() / "work" / "leftover"));
}

TEST_F(PrepareBuildDirTest, StartsACacheAfreshThatAnotherUidCouldHaveWritten) {
  ASSERT_TRUE(PrepareBuildDir(settings_));
  Write(build() / "go" / "planted", "x", 0644);
  ASSERT_EQ(::chown((build() / "go").c_str(), 65534, 65534), 0);
  ASSERT_TRUE(PrepareBuildDir(settings_));
  EXPECT_FALSE(fs::exists(build() / "go" / "planted"));
  EXPECT_EQ(Lstat(build() / "go").st_uid, kBuildUid);

  Write(build() / "go" / "planted", "x", 0644);
  ASSERT_EQ(::chmod((build() / "go").c_str(), 0777), 0);
  ASSERT_TRUE(PrepareBuildDir(settings_));
  EXPECT_FALSE(fs::exists(build() / "go" / "planted"));

  // A symlink in the cache's place is removed, not followed.
  fs::remove_all(build() / "go");
  ASSERT_EQ(::mkdir((root_ / "elsewhere").c_str(), 0700), 0);
  ASSERT_EQ(::symlink((root_ / "elsewhere").c_str(), (build() / "go").c_str()), 0);
  ASSERT_TRUE(PrepareBuildDir(settings_));
  EXPECT_TRUE(S_ISDIR(Lstat(build() / "go").st_mode));
  EXPECT_EQ(Lstat(root_ / "elsewhere").st_uid, 0u);
}

TEST_F(PrepareBuildDirTest, RefusesABuildDirectoryThatIsASymlink) {
  ASSERT_EQ(::mkdir((root_ / "elsewhere").c_str(), 0755), 0);
  ASSERT_EQ(::symlink((root_ / "elsewhere").c_str(), build().c_str()), 0);
  EXPECT_FALSE(PrepareBuildDir(settings_));
  EXPECT_EQ(Lstat(root_ / "elsewhere").st_mode & 07777, 0755u);
}

// tsc's output tree: the build uid's directories and files, copied; anything else refused.
TEST_F(TakeBuildOutputTest, ATreeOfTheBuildsOwnFilesIsCopied) {
  ASSERT_EQ(::mkdir((out_ / "lib").c_str(), 0755), 0);
  ASSERT_EQ(::chown((out_ / "lib").c_str(), kBuildUid, kBuildGid), 0);
  for (const char* name : {"index.js", "lib/greet.js"}) {
    Write(out_ / name, std::string("// ") + name, 0644);
    ASSERT_EQ(::chown((out_ / name).c_str(), kBuildUid, kBuildGid), 0);
  }
  const fs::path dest = root_ / "tree";
  ASSERT_TRUE(TakeBuildOutputTree(work_.string(), kBuildUid, dest.string(), 1 << 20, 10));
  EXPECT_EQ(Read(dest / "index.js"), "// index.js");
  EXPECT_EQ(Read(dest / "lib" / "greet.js"), "// lib/greet.js");
  EXPECT_EQ(Lstat(out_).st_uid, 0u);  // taken over before it was read
  EXPECT_EQ(Lstat(out_ / "lib").st_uid, 0u);
}

TEST_F(TakeBuildOutputTest, ATreeWithALinkOrAForeignFileIsRefused) {
  ASSERT_EQ(::symlink(secret_.c_str(), (out_ / "index.js").c_str()), 0);
  const fs::path dest = root_ / "tree";
  auto taken = TakeBuildOutputTree(work_.string(), kBuildUid, dest.string(), 1 << 20, 10);
  ASSERT_FALSE(taken);
  EXPECT_FALSE(fs::exists(dest / "index.js"));
  ASSERT_EQ(::unlink((out_ / "index.js").c_str()), 0);
  Write(out_ / "index.js", "root's", 0644);  // not the build's own
  taken = TakeBuildOutputTree(work_.string(), kBuildUid, dest.string(), 1 << 20, 10);
  ASSERT_FALSE(taken);
  EXPECT_NE(taken.error().message.find("not a regular file of the build's own"), std::string::npos);
}

TEST_F(TakeBuildOutputTest, ATreeOverItsLimitsIsRefused) {
  for (const char* name : {"a.js", "b.js", "c.js"}) {
    Write(out_ / name, std::string(100, 'x'), 0644);
    ASSERT_EQ(::chown((out_ / name).c_str(), kBuildUid, kBuildGid), 0);
  }
  const fs::path dest = root_ / "tree";
  EXPECT_FALSE(TakeBuildOutputTree(work_.string(), kBuildUid, dest.string(), 250, 10));
  EXPECT_FALSE(TakeBuildOutputTree(work_.string(), kBuildUid, dest.string(), 1 << 20, 2));
  EXPECT_TRUE(TakeBuildOutputTree(work_.string(), kBuildUid, dest.string(), 300, 3));
}

TEST(TypeScriptTest, SourcesLeaveOutDeclarationsAndNodeModules) {
  char templ[] = "/tmp/wisp-ts-sources-XXXXXX";
  ASSERT_NE(::mkdtemp(templ), nullptr);
  const fs::path dir = templ;
  fs::create_directories(dir / "lib");
  fs::create_directories(dir / "node_modules" / "dep");
  for (const char* name : {"index.ts", "lib/a.mts", "lib/b.cts", "types.d.ts", "lib/x.js",
                           "node_modules/dep/index.ts"}) {
    std::ofstream(dir / name) << "x";
  }
  EXPECT_EQ(TypeScriptSources(dir.string()),
            (std::vector<std::string>{"index.ts", "lib/a.mts", "lib/b.cts"}));
  fs::remove_all(dir);
}

TEST(TypeScriptTest, MessagesNameFileLineAndColumn) {
  EXPECT_EQ(TidyTypeScriptMessages(
                "/var/task/index.ts(2,9): error TS2322: Type 'string' is not assignable to type "
                "'number'.\n/var/task/lib/a.ts(10,1): error TS1005: ';' expected.\n"),
            "index.ts:2:9: error TS2322: Type 'string' is not assignable to type 'number'.\n"
            "lib/a.ts:10:1: error TS1005: ';' expected.");
}

}  // namespace
}  // namespace wisp::core
