// A stored code tree packed back into a zip: what the Lambda API's GetFunction points at
// (Code.Location), so a function's code can be downloaded as Lambda users expect.
#pragma once

#include <string>

#include "wisp/common/result.h"

namespace wisp::code {

// Zips the tree at `root` (a CodeStore tree: directories, regular files and symbolic links
// inside the tree): every entry in path order, files deflated with their executable bit, links
// as links, one fixed timestamp, so the same tree always packs to the same bytes. Those bytes
// are Wisp's packing, not the zip that was uploaded (the store keeps the unpacked tree only).
// Blocking.
Result<std::string> ZipTree(const std::string& root);

}  // namespace wisp::code
