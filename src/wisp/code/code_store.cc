#include "wisp/code/code_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <filesystem>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "wisp/code/tree_paths.h"
#include "wisp/code/zip_package.h"
#include "wisp/common/defer.h"
#include "wisp/common/unique_fd.h"

namespace wisp::code {
namespace fs = std::filesystem;

namespace internal {
struct Holds {
  std::mutex mutex;
  std::map<std::string, int, std::less<>> counts;  // live Tree handles per hash
};
}  // namespace internal

namespace {

constexpr const char* kDrafts = ".drafts";
constexpr const char* kTrash = ".trash";

// A SHA-256 computed over several pieces.
class Sha256 {
 public:
  Sha256() : ctx_(EVP_MD_CTX_new()) { EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr); }
  ~Sha256() { EVP_MD_CTX_free(ctx_); }
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void Add(std::string_view bytes) { EVP_DigestUpdate(ctx_, bytes.data(), bytes.size()); }
  // Adds the bytes and the NUL that ends them: no two listings share a serialisation.
  void AddField(std::string_view bytes) {
    Add(bytes);
    Add(std::string_view("\0", 1));
  }
  std::array<unsigned char, 32> Finish() {
    std::array<unsigned char, 32> digest{};
    unsigned int size = 0;
    EVP_DigestFinal_ex(ctx_, digest.data(), &size);
    return digest;
  }

 private:
  EVP_MD_CTX* ctx_;
};

std::string Hex(const std::array<unsigned char, 32>& digest) {
  std::string out;
  out.reserve(64);
  for (unsigned char b : digest) out += fmt::format("{:02x}", b);
  return out;
}

// One entry of a tree's canonical listing.
struct Entry {
  std::string path;
  char kind;           // 'd' directory, 'f' file, 'x' executable file, 'l' link
  std::string detail;  // a file's content hash, a link's target
};

// Makes everything under `dir` (an fd; `prefix` its relative path) root's with canonical modes
// and lists it into `entries`. Anything but files, directories and links is refused.
Result<void> CanonicaliseAndList(int dir, const std::string& prefix, std::vector<Entry>& entries) {
  const bool root = ::geteuid() == 0;
  int listing = ::dup(dir);
  if (listing < 0) return ErrnoError("dup");
  DIR* stream = ::fdopendir(listing);
  if (stream == nullptr) {
    ::close(listing);
    return ErrnoError("fdopendir");
  }
  Defer close_stream([&] { ::closedir(stream); });
  std::vector<std::string> names;
  while (dirent* entry = ::readdir(stream)) {
    if (std::strcmp(entry->d_name, ".") != 0 && std::strcmp(entry->d_name, "..") != 0) {
      names.emplace_back(entry->d_name);
    }
  }
  for (const auto& name : names) {
    const std::string path = prefix.empty() ? name : prefix + "/" + name;
    struct stat st;
    if (::fstatat(dir, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      return ErrnoError("stat " + path);
    }
    if (S_ISDIR(st.st_mode)) {
      UniqueFd child(::openat(dir, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (!child) return ErrnoError("open " + path);
      if ((root && ::fchown(child.get(), 0, 0) != 0) || ::fchmod(child.get(), 0755) != 0) {
        return ErrnoError("set owner and mode of " + path);
      }
      entries.push_back({path, 'd', {}});
      if (auto listed = CanonicaliseAndList(child.get(), path, entries); !listed) return listed;
    } else if (S_ISREG(st.st_mode)) {
      UniqueFd file(::openat(dir, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
      if (!file) return ErrnoError("open " + path);
      const bool executable = (st.st_mode & 0111) != 0;
      if ((root && ::fchown(file.get(), 0, 0) != 0) ||
          ::fchmod(file.get(), executable ? 0755 : 0644) != 0) {
        return ErrnoError("set owner and mode of " + path);
      }
      Sha256 content;
      std::array<char, 64 << 10> buffer;
      for (;;) {
        const ssize_t n = ::read(file.get(), buffer.data(), buffer.size());
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return ErrnoError("read " + path);
        if (n == 0) break;
        content.Add(std::string_view(buffer.data(), static_cast<size_t>(n)));
      }
      entries.push_back({path, executable ? 'x' : 'f', Hex(content.Finish())});
    } else if (S_ISLNK(st.st_mode)) {
      std::array<char, 4096> target;
      const ssize_t n = ::readlinkat(dir, name.c_str(), target.data(), target.size());
      if (n < 0) return ErrnoError("readlink " + path);
      if (root && ::fchownat(dir, name.c_str(), 0, 0, AT_SYMLINK_NOFOLLOW) != 0) {
        return ErrnoError("set owner of " + path);
      }
      entries.push_back({path, 'l', std::string(target.data(), static_cast<size_t>(n))});
    } else {
      return MakeError(ErrorCode::kInvalidArgument,
                       fmt::format("'{}' is not a file, directory or symbolic link", path));
    }
  }
  return {};
}

Result<void> SyncDirectory(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd || ::fsync(fd.get()) != 0) return ErrnoError("fsync " + path);
  return {};
}

// Makes `path` an empty directory of root's with mode 0700, whatever was there.
Result<void> FreshPrivateDirectory(const fs::path& path) {
  std::error_code ec;
  fs::remove_all(path, ec);
  if (ec)
    return MakeError(ErrorCode::kInternal,
                     fmt::format("remove {}: {}", path.string(), ec.message()));
  if (::mkdir(path.c_str(), 0700) != 0) return ErrnoError("mkdir " + path.string());
  return {};
}

uint64_t RegularFileBytes(const fs::path& dir) {
  uint64_t bytes = 0;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_regular_file(ec) && !it->is_symlink(ec)) bytes += it->file_size(ec);
  }
  return bytes;
}

}  // namespace

bool IsTreeHash(std::string_view name) {
  return name.size() == 64 && std::all_of(name.begin(), name.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

std::string Sha256Hex(std::string_view bytes) {
  Sha256 sha;
  sha.Add(bytes);
  return Hex(sha.Finish());
}

std::string Sha256Base64(std::string_view bytes) {
  Sha256 sha;
  sha.Add(bytes);
  const auto digest = sha.Finish();
  std::array<unsigned char, 64> text{};
  const int n = EVP_EncodeBlock(text.data(), digest.data(), static_cast<int>(digest.size()));
  return std::string(reinterpret_cast<const char*>(text.data()), static_cast<size_t>(n));
}

Tree::Tree(std::shared_ptr<internal::Holds> holds, std::string hash, std::string path)
    : holds_(std::move(holds)), hash_(std::move(hash)), path_(std::move(path)) {}

Tree::~Tree() {
  std::lock_guard lock(holds_->mutex);
  auto it = holds_->counts.find(hash_);
  if (it != holds_->counts.end() && --it->second <= 0) holds_->counts.erase(it);
}

Draft::~Draft() {
  if (committed_) return;
  std::error_code ec;
  fs::remove_all(path_, ec);
  if (ec) spdlog::warn("code store: draft {} not removed: {}", path_, ec.message());
}

CodeStore::CodeStore(std::string dir, CodeLimits limits)
    : dir_(std::move(dir)), limits_(limits), holds_(std::make_shared<internal::Holds>()) {}

CodeStore::~CodeStore() = default;

Result<std::unique_ptr<CodeStore>> CodeStore::Open(std::string dir, CodeLimits limits) {
  if (dir.empty() || dir.front() != '/') {
    return MakeError(ErrorCode::kInvalidArgument, "the code store's directory must be absolute");
  }
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) return ErrnoError("mkdir " + dir);
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) return ErrnoError(fmt::format("open {} (must be a directory, not a link)", dir));
  // Root's alone: sandboxes read code through the launcher's stage copies, never from here.
  if ((::geteuid() == 0 && ::fchown(fd.get(), 0, 0) != 0) || ::fchmod(fd.get(), 0700) != 0) {
    return ErrnoError("make " + dir + " private");
  }
  for (const char* sub : {kDrafts, kTrash}) {
    if (auto fresh = FreshPrivateDirectory(fs::path(dir) / sub); !fresh) {
      return tl::unexpected(fresh.error());
    }
  }
  return std::unique_ptr<CodeStore>(new CodeStore(std::move(dir), limits));
}

std::string CodeStore::TreePath(std::string_view hash) const {
  return fmt::format("{}/{}", dir_, hash);
}

Result<std::unique_ptr<Draft>> CodeStore::NewDraft() {
  uint64_t n;
  {
    std::lock_guard lock(holds_->mutex);
    n = next_draft_++;
  }
  std::string path = fmt::format("{}/{}/{}", dir_, kDrafts, n);
  if (::mkdir(path.c_str(), 0700) != 0) return ErrnoError("mkdir " + path);
  return std::unique_ptr<Draft>(new Draft(std::move(path)));
}

Result<void> CodeStore::WriteFile(Draft& draft, std::string_view relative_path,
                                  std::string_view bytes, bool executable) {
  auto components = SplitRelativePath(relative_path);
  if (!components) return tl::unexpected(components.error());
  const std::string name = components->back();
  components->pop_back();
  UniqueFd root(::open(draft.path().c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!root) return ErrnoError("open " + draft.path());
  auto parent = OpenDirectoryIn(root.get(), *components);
  if (!parent) return tl::unexpected(parent.error());
  const mode_t mode = executable ? 0755 : 0644;
  UniqueFd file(::openat(parent->get(), name.c_str(),
                         O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode));
  if (!file) return ErrnoError(fmt::format("create {}", relative_path));
  return WriteAll(file.get(), bytes, relative_path);
}

Result<void> CodeStore::UnpackZip(Draft& draft, std::string_view zip_bytes) {
  UniqueFd root(::open(draft.path().c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!root) return ErrnoError("open " + draft.path());
  return UnpackZipInto(root.get(), zip_bytes, limits_);
}

Result<TreeHandle> CodeStore::Commit(std::unique_ptr<Draft> draft) {
  std::vector<Entry> entries;
  {
    UniqueFd root(::open(draft->path().c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!root) return ErrnoError("open " + draft->path());
    if ((::geteuid() == 0 && ::fchown(root.get(), 0, 0) != 0) || ::fchmod(root.get(), 0755) != 0) {
      return ErrnoError("set owner and mode of " + draft->path());
    }
    if (auto listed = CanonicaliseAndList(root.get(), "", entries); !listed) {
      return tl::unexpected(listed.error());
    }
  }
  std::sort(entries.begin(), entries.end(),
            [](const Entry& a, const Entry& b) { return a.path < b.path; });
  Sha256 listing;
  listing.AddField("wisp-tree-1");  // the listing's format: a change of it is a new name space
  for (const Entry& entry : entries) {
    listing.AddField(std::string_view(&entry.kind, 1));
    listing.AddField(entry.path);
    listing.AddField(entry.detail);
  }
  std::string hash = Hex(listing.Finish());
  std::string path = TreePath(hash);

  // Content the store has already costs no sync: the draft is dropped.
  auto hold_existing = [&]() -> bool {
    struct stat st;
    if (::lstat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return false;
    ++holds_->counts[hash];
    return true;
  };
  {
    std::lock_guard lock(holds_->mutex);
    if (hold_existing()) {
      return std::make_shared<const Tree>(holds_, hash, path);  // the draft goes after the lock
    }
  }
  // New content: on disk before its name is. One syncfs flushes the draft's files and
  // directories in one journal commit, where an fsync per file costs a commit each.
  {
    UniqueFd root(::open(draft->path().c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!root || ::syncfs(root.get()) != 0) return ErrnoError("sync " + draft->path());
  }
  {
    std::lock_guard lock(holds_->mutex);
    if (!hold_existing()) {  // a put of the same content may have won meanwhile
      if (::rename(draft->path().c_str(), path.c_str()) != 0) {
        return ErrnoError(fmt::format("rename {} to {}", draft->path(), path));
      }
      draft->committed_ = true;
      ++holds_->counts[hash];
    }
  }
  auto tree = std::make_shared<const Tree>(holds_, hash, path);
  if (draft->committed_) {
    // The rename is durable once the store directory is: a record naming the tree is written
    // only after this returns.
    if (auto synced = SyncDirectory(dir_); !synced) return tl::unexpected(synced.error());
  }
  draft.reset();  // removes a redundant draft, outside the lock
  return tree;
}

Result<TreeHandle> CodeStore::PutFile(std::string_view relative_path, std::string_view bytes) {
  auto draft = NewDraft();
  if (!draft) return tl::unexpected(draft.error());
  if (auto written = WriteFile(**draft, relative_path, bytes, false); !written) {
    return tl::unexpected(written.error());
  }
  return Commit(std::move(*draft));
}

Result<TreeHandle> CodeStore::PutZip(std::string_view zip_bytes) {
  auto draft = NewDraft();
  if (!draft) return tl::unexpected(draft.error());
  if (auto unpacked = UnpackZip(**draft, zip_bytes); !unpacked) {
    return tl::unexpected(unpacked.error());
  }
  return Commit(std::move(*draft));
}

Result<TreeHandle> CodeStore::Import(const std::string& directory) {
  auto draft = NewDraft();
  if (!draft) return tl::unexpected(draft.error());
  std::error_code ec;
  fs::copy(directory, (*draft)->path(),
           fs::copy_options::recursive | fs::copy_options::copy_symlinks, ec);
  if (ec) {
    return MakeError(ErrorCode::kInternal,
                     fmt::format("copy {} into the code store: {}", directory, ec.message()));
  }
  return Commit(std::move(*draft));
}

Result<TreeHandle> CodeStore::Acquire(std::string_view hash) {
  if (!IsTreeHash(hash)) {
    return MakeError(ErrorCode::kInvalidArgument, fmt::format("'{}' is not a tree hash", hash));
  }
  std::string path = TreePath(hash);
  std::lock_guard lock(holds_->mutex);
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return MakeError(ErrorCode::kNotFound, fmt::format("the code store has no tree {}", hash));
  }
  ++holds_->counts[std::string(hash)];
  return std::make_shared<const Tree>(holds_, std::string(hash), std::move(path));
}

Result<std::vector<std::string>> CodeStore::List() const {
  std::vector<std::string> hashes;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir_, ec)) {
    std::string name = entry.path().filename().string();
    if (IsTreeHash(name)) hashes.push_back(std::move(name));
  }
  if (ec) return MakeError(ErrorCode::kInternal, fmt::format("list {}: {}", dir_, ec.message()));
  std::sort(hashes.begin(), hashes.end());
  return hashes;
}

Result<CollectResult> CodeStore::Collect(const std::set<std::string>& referenced) {
  auto hashes = List();
  if (!hashes) return tl::unexpected(hashes.error());
  std::vector<std::string> doomed;
  {
    // Decided and moved aside under the lock that Commit and Acquire take to hold a tree: a
    // tree is either held first (and kept) or gone first (and a put makes it anew).
    std::lock_guard lock(holds_->mutex);
    for (const auto& hash : *hashes) {
      if (referenced.contains(hash) || holds_->counts.contains(hash)) continue;
      std::string trash = fmt::format("{}/{}/{}-{}", dir_, kTrash, hash, next_draft_++);
      if (::rename(TreePath(hash).c_str(), trash.c_str()) != 0) {
        spdlog::warn("code store: cannot move tree {} aside: {}", hash, std::strerror(errno));
        continue;
      }
      doomed.push_back(std::move(trash));
    }
  }
  CollectResult result;
  for (const auto& path : doomed) {
    result.bytes += RegularFileBytes(path);
    std::error_code ec;
    fs::remove_all(path, ec);
    if (ec) spdlog::warn("code store: cannot remove {}: {}", path, ec.message());
    ++result.trees;
  }
  return result;
}

}  // namespace wisp::code
