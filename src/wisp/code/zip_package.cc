#include "wisp/code/zip_package.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cstring>
#include <deque>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "wisp/code/tree_paths.h"
#include "wisp/common/unique_fd.h"

namespace wisp::code {
namespace {

// The kernel's own bound on following links in one lookup (MAXSYMLINKS).
constexpr int kMaxLinkHops = 40;
// Longer paths fail in the kernel anyway; refused first, with the entry's name.
constexpr size_t kMaxPathBytes = 4000;

// Every refusal starts with one of these (IsPackageRefusal).
constexpr std::string_view kEntryPrefix = "zip entry ";
constexpr std::string_view kZipPrefix = "invalid zip file: ";

tl::unexpected<Error> Refuse(std::string_view entry, std::string_view why) {
  return MakeError(ErrorCode::kInvalidArgument,
                   fmt::format("{}'{}': {}", kEntryPrefix, entry, why));
}

tl::unexpected<Error> RefuseZip(std::string_view why) {
  return MakeError(ErrorCode::kInvalidArgument, fmt::format("{}{}", kZipPrefix, why));
}

std::string Join(const std::vector<std::string>& components, size_t count) {
  std::string out;
  for (size_t i = 0; i < count; ++i) out += i == 0 ? components[i] : "/" + components[i];
  return out;
}

struct ArchiveDeleter {
  void operator()(archive* a) const { archive_read_free(a); }
};

std::string ArchiveMessage(archive* a) {
  const char* text = archive_error_string(a);
  return text != nullptr ? text : "the archive could not be read";
}

// Splits a link target into components, keeping ".." (resolved by the caller).
std::deque<std::string> TargetComponents(std::string_view target) {
  std::deque<std::string> out;
  size_t start = 0;
  while (start <= target.size()) {
    size_t end = target.find('/', start);
    if (end == std::string_view::npos) end = target.size();
    if (end > start) out.emplace_back(target.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

// Resolves the link at `link` (components from the tree's root) as the kernel would, but inside
// the tree: following the links it meets (which the tree holds by now), refusing a step above
// the root, an absolute target, and more than kMaxLinkHops links (a loop).
Result<void> CheckLinkStaysInside(int root, const std::vector<std::string>& link,
                                  const std::string& target) {
  const std::string name = Join(link, link.size());
  std::vector<std::string> resolved(link.begin(), link.end() - 1);
  std::deque<std::string> pending;
  int hops = 0;
  std::string current_target = target;
  for (;;) {
    if (current_target.starts_with('/')) {
      return Refuse(name, fmt::format("symbolic link to an absolute path ('{}') is refused: it "
                                      "would point outside the package",
                                      current_target));
    }
    auto more = TargetComponents(current_target);
    pending.insert(pending.begin(), more.begin(), more.end());
    bool followed = false;
    while (!pending.empty()) {
      std::string part = std::move(pending.front());
      pending.pop_front();
      if (part == ".") continue;
      if (part == "..") {
        if (resolved.empty()) {
          return Refuse(name,
                        fmt::format("symbolic link to '{}' points outside the package", target));
        }
        resolved.pop_back();
        continue;
      }
      resolved.push_back(std::move(part));
      const std::string path = Join(resolved, resolved.size());
      struct stat st;
      if (::fstatat(root, path.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode)) {
        if (++hops > kMaxLinkHops) {
          return Refuse(name, "symbolic link loop (or a chain of more than 40 links)");
        }
        std::array<char, 4096> next;
        const ssize_t n = ::readlinkat(root, path.c_str(), next.data(), next.size());
        if (n < 0) return ErrnoError("readlink " + path);
        current_target.assign(next.data(), static_cast<size_t>(n));
        resolved.pop_back();  // the link's own name resolves to its target, from its directory
        followed = true;
        break;
      }
      // A directory, a file or nothing: a link to a missing path inside stays inside.
    }
    if (!followed) return {};
  }
}

}  // namespace

Result<void> UnpackZipInto(int root, std::string_view zip_bytes, const CodeLimits& limits) {
  if (zip_bytes.size() > limits.max_zip_bytes) {
    return RefuseZip(fmt::format("{} bytes zipped, over the limit of {} bytes", zip_bytes.size(),
                                 limits.max_zip_bytes));
  }
  if (zip_bytes.empty()) return RefuseZip("the zip is empty (0 bytes)");
  std::unique_ptr<archive, ArchiveDeleter> reader(archive_read_new());
  if (!reader) return MakeError(ErrorCode::kInternal, "archive_read_new failed");
  // Zip alone (tar, cpio or a compressed stream are not deployment packages), read through its
  // central directory: the listing other unzip tools trust, not local headers that may differ.
  archive_read_support_format_zip_seekable(reader.get());
  if (archive_read_open_memory(reader.get(), zip_bytes.data(), zip_bytes.size()) != ARCHIVE_OK) {
    // An end-of-central-directory record and nothing before it: a zip of nothing, which the
    // reader does not recognise as a zip at all.
    if (zip_bytes.starts_with(std::string_view("PK\x05\x06", 4))) {
      return RefuseZip("the zip has no entries");
    }
    return RefuseZip(fmt::format("not a readable zip: {}", ArchiveMessage(reader.get())));
  }

  std::set<std::string> seen;
  std::vector<std::pair<std::vector<std::string>, std::string>> links;
  uint64_t entries = 0;
  uint64_t written = 0;
  std::array<char, 64 << 10> buffer;
  for (;;) {
    archive_entry* entry = nullptr;
    const int status = archive_read_next_header(reader.get(), &entry);
    if (status == ARCHIVE_EOF) break;
    if (status < ARCHIVE_WARN) {
      return RefuseZip(
          entries == 0
              ? fmt::format("not a readable zip: {}", ArchiveMessage(reader.get()))
              : fmt::format("after {} entries: {}", entries, ArchiveMessage(reader.get())));
    }
    if (++entries > limits.max_entries) {
      return RefuseZip(fmt::format("more than {} entries", limits.max_entries));
    }
    const char* raw_name = archive_entry_pathname(entry);
    if (raw_name == nullptr) return RefuseZip(fmt::format("entry {} has no name", entries));
    const std::string name = raw_name;
    if (name.size() > kMaxPathBytes) {
      return Refuse(name.substr(0, 64) + "...", "the path is longer than 4000 bytes");
    }
    auto components = SplitRelativePath(name);
    if (!components) {
      return MakeError(ErrorCode::kInvalidArgument,
                       std::string(kEntryPrefix) + components.error().message);
    }
    const std::string path = Join(*components, components->size());
    if (!seen.insert(path).second) return Refuse(name, "the path appears twice in the zip");
    if (archive_entry_is_encrypted(entry)) return Refuse(name, "encrypted entries are refused");
    if (archive_entry_hardlink(entry) != nullptr) return Refuse(name, "hard links are refused");

    const mode_t type = archive_entry_filetype(entry);
    if (type == AE_IFDIR) {
      auto dir = OpenDirectoryIn(root, *components);
      if (!dir) return Refuse(name, dir.error().message);
      continue;
    }
    if (type != AE_IFREG && type != AE_IFLNK) {
      return Refuse(name,
                    "devices, fifos and sockets are refused: only files, directories and "
                    "symbolic links");
    }
    const std::string leaf = components->back();
    std::vector<std::string> parent_components(components->begin(), components->end() - 1);
    auto parent = OpenDirectoryIn(root, parent_components);
    if (!parent) return Refuse(name, parent.error().message);

    if (type == AE_IFLNK) {
      const char* target = archive_entry_symlink(entry);
      if (target == nullptr || *target == '\0') return Refuse(name, "symbolic link without target");
      written += std::strlen(target);
      if (::symlinkat(target, parent->get(), leaf.c_str()) != 0) {
        if (errno == EEXIST) return Refuse(name, "the path appears twice in the zip");
        return ErrnoError("symlink " + path);
      }
      links.emplace_back(*components, target);
      continue;
    }

    const bool executable = (archive_entry_perm(entry) & 0111) != 0;
    UniqueFd file(::openat(parent->get(), leaf.c_str(),
                           O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                           executable ? 0700 : 0600));
    if (!file) {
      if (errno == EEXIST) return Refuse(name, "the path appears twice in the zip");
      return ErrnoError("create " + path);
    }
    for (;;) {
      const la_ssize_t n = archive_read_data(reader.get(), buffer.data(), buffer.size());
      if (n == 0) break;
      if (n < 0) {  // a bad checksum (ARCHIVE_WARN) included: the package is corrupt
        return Refuse(name, fmt::format("cannot be unpacked: {}", ArchiveMessage(reader.get())));
      }
      // Counted as written, whatever the entry declared: a bomb stops here.
      written += static_cast<uint64_t>(n);
      if (written > limits.max_unzipped_bytes) {
        return Refuse(name, fmt::format("the unzipped package exceeds the limit of {} bytes",
                                        limits.max_unzipped_bytes));
      }
      if (auto wrote = WriteAll(file.get(), std::string_view(buffer.data(), size_t(n)), path);
          !wrote) {
        return wrote;
      }
    }
  }
  if (entries == 0) return RefuseZip("the zip has no entries");
  // Links are judged once the whole tree is there: a link may point at an entry after it.
  for (const auto& [link, target] : links) {
    if (auto inside = CheckLinkStaysInside(root, link, target); !inside) return inside;
  }
  return {};
}

bool IsPackageRefusal(const Error& error) {
  return error.code == ErrorCode::kInvalidArgument &&
         (error.message.starts_with(kEntryPrefix) || error.message.starts_with(kZipPrefix));
}

}  // namespace wisp::code
