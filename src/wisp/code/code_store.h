// CodeStore: function code as content-addressed, immutable directory trees under one directory
// (`<data-dir>/code`). A function version refers to its tree by hash; identical code is one tree,
// and a second put of it writes nothing new. The store alone builds, names and removes paths
// under its directory.
//
// Layout (everything root's):
//   <dir>/                 mode 0700: only root (wispd, the launcher) reads trees; sandboxes get
//                          the launcher's copy on its stage, never a host path
//   <dir>/<sha256 hex>/    a committed tree: directories 0755, files 0644 or 0755 (executable),
//                          symbolic links resolving inside the tree; never changed again
//   <dir>/.drafts/<n>/     trees being written (removed at Open: a crash leaves nothing behind)
//   <dir>/.trash/<n>/      trees being collected
//
// The hash is SHA-256 of a canonical listing of the tree (every entry's relative path, its kind,
// for files the executable bit and the SHA-256 of the content, for links the target), so it
// names the content whatever order or time it was written in. A commit of new content flushes
// the draft (one syncfs) before the rename that publishes the tree, and fsyncs the store
// directory after it: a tree a record names survives a power cut with it. Content the store has
// already is hashed, found, and its draft dropped, without any sync.
//
// Collection: a tree is kept while a `Tree` handle to it lives (a deploy in flight, a deployment
// that may still start instances, a function's record) or while the caller's list of referenced
// hashes names it. Handles are counted under the store's lock, the same lock under which Collect
// decides, so a tree committed or acquired by a deploy can never be collected before the deploy
// holds it.
//
// Thread rules: every method may be called from any thread; all but the accessors block on the
// file system (run them off the io thread). Handles may be dropped on any thread.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "wisp/common/result.h"

namespace wisp::code {

// Lambda's limits for a deployment package, checked while a zip is unpacked.
struct CodeLimits {
  uint64_t max_zip_bytes = 50ull << 20;
  // Bytes actually written (never the sizes the archive declares).
  uint64_t max_unzipped_bytes = 250ull << 20;
  // Entries of a zip (files, directories, links): a bound on inodes and on the work of one put.
  uint64_t max_entries = 20000;
};

namespace internal {
struct Holds;  // the counts of live handles per hash, shared with every handle
}

// A committed tree, held: while this lives the tree is not collected. Immutable.
class Tree {
 public:
  Tree(std::shared_ptr<internal::Holds> holds, std::string hash, std::string path);
  ~Tree();
  Tree(const Tree&) = delete;
  Tree& operator=(const Tree&) = delete;

  const std::string& hash() const { return hash_; }  // 64 lowercase hex digits
  const std::string& path() const { return path_; }  // the tree's root directory on the host

 private:
  std::shared_ptr<internal::Holds> holds_;
  std::string hash_;
  std::string path_;
};
using TreeHandle = std::shared_ptr<const Tree>;

// A tree being written: a private directory nobody else sees until Commit. Removed with
// everything in it when dropped uncommitted.
class Draft {
 public:
  ~Draft();
  Draft(const Draft&) = delete;
  Draft& operator=(const Draft&) = delete;
  const std::string& path() const { return path_; }

 private:
  friend class CodeStore;
  explicit Draft(std::string path) : path_(std::move(path)) {}
  std::string path_;
  bool committed_ = false;
};

struct CollectResult {
  uint64_t trees = 0;  // removed
  uint64_t bytes = 0;  // their regular files' sizes
};

class CodeStore {
 public:
  // Opens (creating) the store at `dir`: makes it root's with mode 0700 and removes drafts and
  // trash a previous run left.
  static Result<std::unique_ptr<CodeStore>> Open(std::string dir, CodeLimits limits);
  ~CodeStore();
  CodeStore(const CodeStore&) = delete;
  CodeStore& operator=(const CodeStore&) = delete;

  // An empty draft to write a tree into (WriteFile, UnpackZip, or a build's output), then Commit.
  Result<std::unique_ptr<Draft>> NewDraft();
  // Writes one regular file at `relative_path` (made of normal components, no "..", no link on
  // the way), creating its directories.
  Result<void> WriteFile(Draft& draft, std::string_view relative_path, std::string_view bytes,
                         bool executable);
  // Unpacks a zip's bytes into the draft within `limits()`. kInvalidArgument naming the entry and
  // the reason for anything refused (see zip_package.h); the draft is then left for the caller to
  // drop.
  Result<void> UnpackZip(Draft& draft, std::string_view zip_bytes);
  // Publishes the draft as a tree: modes made canonical (root's; directories 0755, files 0644 or
  // 0755), content hashed and synced, renamed to its hash. If the store has that tree already,
  // the draft is removed and the existing tree is returned.
  Result<TreeHandle> Commit(std::unique_ptr<Draft> draft);

  // One file as a whole tree (a single-file function): NewDraft + WriteFile + Commit.
  Result<TreeHandle> PutFile(std::string_view relative_path, std::string_view bytes);
  // A zip package as a tree: NewDraft + UnpackZip + Commit. Nothing stays on disk if refused.
  Result<TreeHandle> PutZip(std::string_view zip_bytes);
  // Copies a directory written by an older wispd (regular files, directories and links; nothing
  // else) into the store: upgrades of a data dir.
  Result<TreeHandle> Import(const std::string& directory);

  // The stored tree with this hash, held. kNotFound if the store does not have it.
  Result<TreeHandle> Acquire(std::string_view hash);
  // The hashes of every stored tree.
  Result<std::vector<std::string>> List() const;
  // Removes every tree that no handle holds and `referenced` does not name.
  Result<CollectResult> Collect(const std::set<std::string>& referenced);

  const CodeLimits& limits() const { return limits_; }
  const std::string& dir() const { return dir_; }

 private:
  CodeStore(std::string dir, CodeLimits limits);
  std::string TreePath(std::string_view hash) const;

  const std::string dir_;
  const CodeLimits limits_;
  std::shared_ptr<internal::Holds> holds_;
  uint64_t next_draft_ = 0;  // guarded by holds_->mutex
};

// "<64 hex digits>": the form of a tree's name, and the only names Collect and Acquire accept.
bool IsTreeHash(std::string_view name);

// SHA-256 of `bytes`, as Lambda's CodeSha256 shows it (standard base64) and as hex.
std::string Sha256Base64(std::string_view bytes);
std::string Sha256Hex(std::string_view bytes);

}  // namespace wisp::code
