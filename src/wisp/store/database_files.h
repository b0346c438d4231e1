// The files of a SQLite database hold secrets (function environments, call payloads): only
// wispd's user may read them.
#pragma once

#include <string>

#include "wisp/common/result.h"

namespace wisp::store {

// Creates the database file at `path` with mode 0600 if it does not exist, and sets 0600 on it
// and on its -wal and -shm files if they exist (a file written by an older wispd, or created
// under a loose umask). Call before SQLite opens the file: SQLite creates the -wal and -shm
// files with the database file's mode. Symbolic links are refused, not followed.
Result<void> MakeDatabaseFilesPrivate(const std::string& path);

}  // namespace wisp::store
