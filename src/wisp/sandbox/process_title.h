// What /proc/<pid>/cmdline and /proc/<pid>/environ show of a process: the memory where execve
// put its argv and environment strings. The launcher and each sandbox's init are forks of
// wispd and would otherwise show wispd's command line and environment (listen address, data
// directory, settings) to whoever reads them, a function included: init is its /proc/1.
//
// Thread rules: only in the single-threaded launcher and its children.
#pragma once

#include <string_view>

namespace wisp::sandbox {

// Empties the environment (clearenv) and overwrites the argv area with `title` (cut to fit)
// and NULs, and the environment area with NULs. The areas' addresses come from /proc/self/stat
// the first time; a fork inherits them, so a forked child's call touches no file. Best effort:
// a process whose areas cannot be found keeps them.
void SetProcessTitle(std::string_view title);

}  // namespace wisp::sandbox
