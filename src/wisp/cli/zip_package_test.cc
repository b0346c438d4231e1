#include "wisp/cli/zip_package.h"

#include <archive.h>
#include <archive_entry.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>

namespace wisp::cli {
namespace {
namespace fs = std::filesystem;

TEST(ZipDirectoryTest, PacksEveryFileUnderItsRelativePath) {
  const fs::path dir = fs::temp_directory_path() / ("wisp-zip-test-" + std::to_string(getpid()));
  fs::create_directories(dir / "lib");
  std::ofstream(dir / "index.js") << "exports.handler = 1;";
  std::ofstream(dir / "lib" / "util.js") << "module.exports = 2;";
  std::ofstream(dir / "bootstrap") << "#!/bin/sh";
  fs::permissions(dir / "bootstrap", fs::perms::owner_exec, fs::perm_options::add);
  std::vector<std::string> names;
  std::string error;
  const auto zip = ZipDirectory(dir.string(), &names, &error);
  fs::remove_all(dir);
  ASSERT_TRUE(zip) << error;
  EXPECT_EQ(names, (std::vector<std::string>{"bootstrap", "index.js", "lib/util.js"}));

  std::map<std::string, std::string> read;
  std::map<std::string, int> modes;
  archive* in = archive_read_new();
  archive_read_support_format_zip(in);
  ASSERT_EQ(archive_read_open_memory(in, zip->data(), zip->size()), ARCHIVE_OK);
  archive_entry* entry;
  while (archive_read_next_header(in, &entry) == ARCHIVE_OK) {
    std::string content(static_cast<size_t>(archive_entry_size(entry)), '\0');
    archive_read_data(in, content.data(), content.size());
    read[archive_entry_pathname(entry)] = content;
    modes[archive_entry_pathname(entry)] = archive_entry_perm(entry);
  }
  archive_read_free(in);
  EXPECT_EQ(read, (std::map<std::string, std::string>{{"bootstrap", "#!/bin/sh"},
                                                      {"index.js", "exports.handler = 1;"},
                                                      {"lib/util.js", "module.exports = 2;"}}));
  // Executables stay executable (a custom runtime's bootstrap), the rest read-write.
  EXPECT_EQ(modes["bootstrap"], 0755);
  EXPECT_EQ(modes["index.js"], 0644);
}

TEST(ZipDirectoryTest, AMissingFolderIsAnError) {
  std::vector<std::string> names;
  std::string error;
  EXPECT_FALSE(ZipDirectory("/nonexistent-wisp-dir", &names, &error));
  EXPECT_NE(error.find("cannot read"), std::string::npos);
}

}  // namespace
}  // namespace wisp::cli
