// code_store: what putting a version's code in the CodeStore costs on a deploy, next to what
// writing the same file the way wispd did before the store (one write and a rename, no sync)
// costs. Each put of new content hashes it, syncs every file and directory and renames the tree
// into place; a put of content the store already has does the same work up to the rename and
// then drops the draft. A zip package adds unpacking (libarchive) and the checks of every entry.
//
// Prints the median and p99 of each, in microseconds, in a fresh temporary directory on the
// file system of TMPDIR (use the data dir's file system: the sync cost is the disk's).
//
// Usage: build/bench/code_store [--iterations N]   (default 200)
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "wisp/code/code_store.h"

namespace {
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

struct Figures {
  double median_us;
  double p99_us;
};

template <typename F>
Figures Measure(int iterations, F&& run) {
  std::vector<double> us;
  for (int i = 0; i < iterations; ++i) {
    const auto start = Clock::now();
    run(i);
    us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - start).count());
  }
  std::sort(us.begin(), us.end());
  return {us[us.size() / 2], us[std::min(us.size() - 1, us.size() * 99 / 100)]};
}

// A zip of a small Node package (a handler, 20 dependency files), made with `zip` if the host
// has it; empty otherwise.
std::string SmallPackage(const fs::path& dir) {
  const fs::path src = dir / "package-src";
  fs::create_directories(src / "node_modules" / "dep" / "lib");
  std::ofstream(src / "index.js")
      << "const d = require('dep');\nexports.handler = async () => d;\n";
  std::ofstream(src / "node_modules" / "dep" / "package.json") << R"({"name":"dep"})";
  for (int i = 0; i < 20; ++i) {
    std::ofstream(src / "node_modules" / "dep" / "lib" / fmt::format("m{}.js", i))
        << fmt::format("module.exports = {{ n: {} }};\n", i) << std::string(2000, '/') << "\n";
  }
  const fs::path zip = dir / "package.zip";
  const std::string command =
      fmt::format("cd '{}' && zip -qr '{}' . >/dev/null 2>&1", src.string(), zip.string());
  if (std::system(command.c_str()) != 0) return {};
  std::ifstream in(zip, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace

int main(int argc, char** argv) {
  int iterations = 200;
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], "--iterations") == 0) iterations = std::max(1, std::atoi(argv[++i]));
  }
  const fs::path dir = fs::temp_directory_path() / fmt::format("wisp-code-bench-{}", getpid());
  fs::create_directories(dir);
  auto opened = wisp::code::CodeStore::Open((dir / "code").string(), {});
  if (!opened) {
    std::fprintf(stderr, "%s\n", opened.error().message.c_str());
    return 1;
  }
  auto& store = **opened;
  const std::string code =
      "exports.handler = async (event) => ({ ok: true, event });\n" + std::string(2000, '/') + "\n";

  const Figures old_write = Measure(iterations, [&](int i) {
    const fs::path version = dir / "functions" / fmt::format("v{}", i);
    fs::create_directories(version);
    { std::ofstream(version / "index.js.tmp", std::ios::binary) << code; }
    fs::rename(version / "index.js.tmp", version / "index.js");
  });
  const Figures new_put = Measure(iterations, [&](int i) {
    auto tree = store.PutFile("index.js", code + std::to_string(i));
    if (!tree) std::abort();
  });
  const Figures same_put = Measure(iterations, [&](int) {
    auto tree = store.PutFile("index.js", code);
    if (!tree) std::abort();
  });
  std::printf("2 KB single file, %d puts each (median / p99, us)\n", iterations);
  std::printf("  before the store (write + rename, no sync)  %8.0f  %8.0f\n", old_write.median_us,
              old_write.p99_us);
  std::printf("  CodeStore::PutFile, new content             %8.0f  %8.0f\n", new_put.median_us,
              new_put.p99_us);
  std::printf("  CodeStore::PutFile, content already stored  %8.0f  %8.0f\n", same_put.median_us,
              same_put.p99_us);

  const std::string zip = SmallPackage(dir);
  if (zip.empty()) {
    std::printf("zip package: skipped (no `zip` command on this host)\n");
  } else {
    const Figures zip_put = Measure(std::max(1, iterations / 4), [&](int) {
      auto tree = store.PutZip(zip);
      if (!tree) std::abort();
    });
    std::printf("zip package of %zu bytes (22 files): CodeStore::PutZip  %8.0f  %8.0f\n",
                zip.size(), zip_put.median_us, zip_put.p99_us);
  }
  opened->reset();
  fs::remove_all(dir);
  return 0;
}
