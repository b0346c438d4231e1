#include "wisp/code/tree_zip.h"

#include <archive.h>
#include <archive_entry.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <vector>

#include <fmt/format.h>

namespace wisp::code {
namespace {
namespace fs = std::filesystem;

// 1980-01-01T00:00:00Z, the first time a zip's DOS timestamp can hold: content, not time,
// decides the bytes.
constexpr time_t kFixedTime = 315532800;

struct WriterDeleter {
  void operator()(archive* a) const { archive_write_free(a); }
};
struct EntryDeleter {
  void operator()(archive_entry* e) const { archive_entry_free(e); }
};

la_ssize_t AppendToString(archive*, void* client, const void* buffer, size_t length) {
  static_cast<std::string*>(client)->append(static_cast<const char*>(buffer), length);
  return static_cast<la_ssize_t>(length);
}

tl::unexpected<Error> Failed(archive* writer, std::string_view what) {
  const char* text = archive_error_string(writer);
  return MakeError(ErrorCode::kInternal,
                   fmt::format("cannot zip the code tree: {}: {}", what, text ? text : "error"));
}

}  // namespace

Result<std::string> ZipTree(const std::string& root) {
  std::error_code ec;
  std::vector<fs::path> paths;
  for (fs::recursive_directory_iterator it(root, ec), end; !ec && it != end; it.increment(ec)) {
    paths.push_back(it->path());
  }
  if (ec) {
    return MakeError(ErrorCode::kInternal,
                     fmt::format("cannot read the code tree {}: {}", root, ec.message()));
  }
  std::sort(paths.begin(), paths.end());

  std::string out;
  std::unique_ptr<archive, WriterDeleter> writer(archive_write_new());
  if (!writer) return MakeError(ErrorCode::kInternal, "archive_write_new failed");
  // No padding of the last block: a zip ends where its central directory does.
  if (archive_write_set_format_zip(writer.get()) != ARCHIVE_OK ||
      archive_write_set_bytes_in_last_block(writer.get(), 1) != ARCHIVE_OK ||
      archive_write_open2(writer.get(), &out, nullptr, AppendToString, nullptr, nullptr) !=
          ARCHIVE_OK) {
    return Failed(writer.get(), "open");
  }
  for (const fs::path& path : paths) {
    const fs::file_status status = fs::symlink_status(path, ec);
    if (ec)
      return MakeError(ErrorCode::kInternal,
                       fmt::format("stat {}: {}", path.string(), ec.message()));
    // Lexically: fs::relative would resolve a link to its target's name.
    const std::string name = path.lexically_relative(root).generic_string();
    std::unique_ptr<archive_entry, EntryDeleter> entry(archive_entry_new());
    archive_entry_set_mtime(entry.get(), kFixedTime, 0);
    std::string content;
    if (fs::is_symlink(status)) {
      archive_entry_set_pathname(entry.get(), name.c_str());
      archive_entry_set_filetype(entry.get(), AE_IFLNK);
      archive_entry_set_perm(entry.get(), 0777);
      archive_entry_set_symlink(entry.get(), fs::read_symlink(path).c_str());
    } else if (fs::is_directory(status)) {
      archive_entry_set_pathname(entry.get(), (name + "/").c_str());
      archive_entry_set_filetype(entry.get(), AE_IFDIR);
      archive_entry_set_perm(entry.get(), 0755);
    } else if (fs::is_regular_file(status)) {
      std::ifstream in(path, std::ios::binary);
      content.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
      if (!in.good() && !in.eof()) {
        return MakeError(ErrorCode::kInternal, fmt::format("cannot read {}", path.string()));
      }
      const bool executable = (status.permissions() & fs::perms::owner_exec) != fs::perms::none;
      archive_entry_set_pathname(entry.get(), name.c_str());
      archive_entry_set_filetype(entry.get(), AE_IFREG);
      archive_entry_set_perm(entry.get(), executable ? 0755 : 0644);
      archive_entry_set_size(entry.get(), static_cast<la_int64_t>(content.size()));
    } else {
      continue;  // a tree holds nothing else
    }
    if (archive_write_header(writer.get(), entry.get()) != ARCHIVE_OK) {
      return Failed(writer.get(), name);
    }
    if (!content.empty() && archive_write_data(writer.get(), content.data(), content.size()) !=
                                static_cast<la_ssize_t>(content.size())) {
      return Failed(writer.get(), name);
    }
  }
  if (archive_write_close(writer.get()) != ARCHIVE_OK) return Failed(writer.get(), "close");
  return out;
}

}  // namespace wisp::code
