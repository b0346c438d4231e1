#include "wisp/cli/zip_package.h"

#include <archive.h>
#include <archive_entry.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

#include <fmt/format.h>

namespace wisp::cli {
namespace fs = std::filesystem;

namespace {
la_ssize_t AppendTo(archive*, void* out, const void* data, size_t size) {
  static_cast<std::string*>(out)->append(static_cast<const char*>(data), size);
  return static_cast<la_ssize_t>(size);
}
}  // namespace

std::optional<std::string> ZipDirectory(const std::string& dir, std::vector<std::string>* names,
                                        std::string* error) {
  std::vector<fs::path> files;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    if (it->is_regular_file() && !it->is_symlink()) files.push_back(it->path());
  }
  if (ec) {
    *error = fmt::format("cannot read {}: {}", dir, ec.message());
    return std::nullopt;
  }
  std::sort(files.begin(), files.end());  // the same folder makes the same package
  std::string out;
  std::unique_ptr<archive, decltype(&archive_write_free)> zip(archive_write_new(),
                                                              archive_write_free);
  archive_write_set_format_zip(zip.get());
  archive_write_open(zip.get(), &out, nullptr, AppendTo, nullptr);
  for (const auto& file : files) {
    std::ifstream in(file, std::ios::binary);
    std::stringstream content;
    content << in.rdbuf();
    if (!in) {
      *error = fmt::format("cannot read {}", file.string());
      return std::nullopt;
    }
    const std::string bytes = content.str();
    const std::string relative = fs::relative(file, dir).generic_string();
    names->push_back(relative);
    std::unique_ptr<archive_entry, decltype(&archive_entry_free)> entry(archive_entry_new(),
                                                                        archive_entry_free);
    archive_entry_set_pathname(entry.get(), relative.c_str());
    archive_entry_set_size(entry.get(), static_cast<la_int64_t>(bytes.size()));
    archive_entry_set_filetype(entry.get(), AE_IFREG);
    // Executables stay executable: a custom runtime's bootstrap must be.
    const bool executable =
        (fs::status(file).permissions() & fs::perms::owner_exec) != fs::perms::none;
    archive_entry_set_perm(entry.get(), executable ? 0755 : 0644);
    if (archive_write_header(zip.get(), entry.get()) != ARCHIVE_OK ||
        archive_write_data(zip.get(), bytes.data(), bytes.size()) < 0) {
      *error = fmt::format("cannot zip {}: {}", relative, archive_error_string(zip.get()));
      return std::nullopt;
    }
  }
  if (archive_write_close(zip.get()) != ARCHIVE_OK) {
    *error = fmt::format("cannot zip {}: {}", dir, archive_error_string(zip.get()));
    return std::nullopt;
  }
  return out;
}

}  // namespace wisp::cli
