// A deployment package (a zip, as Lambda takes it) unpacked into a directory with libarchive,
// trusting nothing the archive says. Refused, each with kInvalidArgument naming the entry and the
// reason (Lambda's InvalidZipFileException):
//   - more than limits.max_zip_bytes of zip, or not a zip, truncated or corrupt, or empty;
//   - more than limits.max_entries entries;
//   - more than limits.max_unzipped_bytes written in all (counted as written, so a zip bomb
//     stops at the limit whatever sizes it declares);
//   - absolute paths and ".." components (zip slip); a path through a symbolic link or a file;
//   - the same path twice;
//   - devices, fifos, sockets, hard links, encrypted entries;
//   - symbolic links that do not resolve inside the tree (absolute targets, targets climbing
//     out, chains of links that do, loops). Links that stay inside are kept: npm's
//     node_modules/.bin links are of this kind.
// Kept: directories, regular files and their executable bit (a `bootstrap` stays executable);
// setuid, setgid and sticky bits never (CodeStore::Commit makes every mode 0644 or 0755).
//
// On refusal the directory holds whatever was unpacked before it: the caller (CodeStore's draft)
// removes it.
#pragma once

#include <string_view>

#include "wisp/code/code_store.h"
#include "wisp/common/result.h"

namespace wisp::code {

// Unpacks `zip_bytes` into `root`, an fd of an empty directory. Blocking.
Result<void> UnpackZipInto(int root, std::string_view zip_bytes, const CodeLimits& limits);

// True for an error UnpackZipInto refused a package with (the package's fault, Lambda's
// InvalidZipFileException), as opposed to other invalid arguments on the way.
bool IsPackageRefusal(const Error& error);

}  // namespace wisp::code
