#include "wisp/sandbox/process_title.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string_view>

namespace wisp::sandbox {
namespace {

struct Areas {
  bool read = false;
  uintptr_t arg_start = 0, arg_end = 0, env_start = 0, env_end = 0;
};
Areas areas;

// Fields 48-51 of /proc/self/stat (Linux 3.5+): arg_start arg_end env_start env_end.
void ReadAreas() {
  areas.read = true;
  char buf[2048];
  int fd = ::open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0) return;
  std::string_view text(buf, static_cast<size_t>(n));
  // The command name (field 2) may hold spaces and parentheses: count from its closing one.
  const size_t close = text.rfind(')');
  if (close == std::string_view::npos) return;
  text.remove_prefix(close + 1);
  uintptr_t values[4] = {};
  int field = 2;
  size_t pos = 0;
  while (pos < text.size() && field < 51) {
    while (pos < text.size() && text[pos] == ' ') ++pos;
    size_t end = text.find(' ', pos);
    if (end == std::string_view::npos) end = text.size();
    ++field;
    if (field >= 48) {
      std::from_chars(text.data() + pos, text.data() + end, values[field - 48]);
    }
    pos = end;
  }
  if (field < 51 || values[0] == 0 || values[1] <= values[0] || values[3] < values[2]) return;
  areas.arg_start = values[0];
  areas.arg_end = values[1];
  areas.env_start = values[2];
  areas.env_end = values[3];
}

}  // namespace

void SetProcessTitle(std::string_view title) {
  if (!areas.read) ReadAreas();
  ::clearenv();
  if (areas.arg_start == 0) return;
  // The areas are this process's own stack pages, as execve laid them out: writable.
  auto* arg = reinterpret_cast<char*>(areas.arg_start);
  const size_t arg_size = areas.arg_end - areas.arg_start;
  std::memset(arg, 0, arg_size);
  std::memcpy(arg, title.data(), std::min(title.size(), arg_size - 1));
  if (areas.env_end > areas.env_start) {
    std::memset(reinterpret_cast<char*>(areas.env_start), 0, areas.env_end - areas.env_start);
  }
}

}  // namespace wisp::sandbox
