#include "wisp/sandbox/host_ids.h"

#include <charconv>

#include <fmt/format.h>

namespace wisp::sandbox {
namespace {

constexpr uint64_t kFirstUnreservedId = 65536;
constexpr uint64_t kInvalidId = 0xffffffffull;

std::optional<uint64_t> ParseId(std::string_view s) {
  uint64_t value = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (ec != std::errc() || end != s.data() + s.size() || s.empty()) return std::nullopt;
  return value;
}

std::vector<std::string_view> Split(std::string_view line, char separator) {
  std::vector<std::string_view> fields;
  for (;;) {
    const size_t at = line.find(separator);
    fields.push_back(line.substr(0, at));
    if (at == std::string_view::npos) return fields;
    line.remove_prefix(at + 1);
  }
}

// Calls `fn(line)` for every line that is neither blank nor a comment.
template <typename Fn>
Result<void> ForEachEntry(std::string_view text, Fn fn) {
  while (!text.empty()) {
    const size_t end = text.find('\n');
    std::string_view line = text.substr(0, end);
    text.remove_prefix(end == std::string_view::npos ? text.size() : end + 1);
    if (line.empty() || line[0] == '#') continue;
    if (auto r = fn(line); !r) return r;
  }
  return {};
}

}  // namespace

Result<void> ValidateHostIdRange(uint32_t base, uint32_t count) {
  const uint64_t last = uint64_t{base} + count - 1;
  if (count == 0) {
    return MakeError(ErrorCode::kInvalidArgument, "sandbox_id_count must be at least 1");
  }
  if (base < kFirstUnreservedId) {
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("sandbox_id_base {} is below 65536, where the host's own users "
                                 "live; use an unused range such as 1879048192",
                                 base));
  }
  if (last >= kInvalidId) {
    return MakeError(
        ErrorCode::kInvalidArgument,
        fmt::format("sandbox ids {}..{} run past 4294967294, the largest uid", base, last));
  }
  return {};
}

Result<void> CheckSubordinateIds(std::string_view file_name, std::string_view text, uint32_t base,
                                 uint32_t count) {
  const uint64_t last = uint64_t{base} + count - 1;
  return ForEachEntry(text, [&](std::string_view line) -> Result<void> {
    auto fields = Split(line, ':');
    if (fields.size() != 3) return {};  // not an id range (the tools ignore it too)
    auto first = ParseId(fields[1]);
    auto size = ParseId(fields[2]);
    if (!first || !size || *size == 0) return {};
    const uint64_t entry_last = *first + *size - 1;
    if (*first > last || entry_last < base) return {};
    return MakeError(ErrorCode::kFailedPrecondition,
                     fmt::format("sandbox ids {}..{} overlap {}'s entry for {} ({}..{}); set "
                                 "sandbox_id_base to a range nobody uses",
                                 base, last, file_name, fields[0], *first, entry_last));
  });
}

Result<void> CheckAccountIds(std::string_view file_name, std::string_view text, uint32_t base,
                             uint32_t count) {
  const uint64_t last = uint64_t{base} + count - 1;
  return ForEachEntry(text, [&](std::string_view line) -> Result<void> {
    auto fields = Split(line, ':');
    if (fields.size() < 3) return {};
    auto id = ParseId(fields[2]);
    if (!id || *id < base || *id > last) return {};
    return MakeError(ErrorCode::kFailedPrecondition,
                     fmt::format("sandbox ids {}..{} include id {} of {} in {}; set "
                                 "sandbox_id_base to a range nobody uses",
                                 base, last, *id, fields[0], file_name));
  });
}

}  // namespace wisp::sandbox
