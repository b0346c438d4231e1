// RuntimeCatalog: the languages a function can be written in, as data. Each entry says what a
// runtime is called (its name and the aliases users and AWS use), which interpreter runs it,
// which shim loads a handler, how a handler names its file, what file a whole program is
// written to, and whether generic instances of it can wait prewarmed. A custom runtime
// (Lambda's `provided` family) has none of these: the function's own `bootstrap` runs. Everything
// that differs between runtimes (validation, deploy, sandbox argv, prewarm pools, the APIs' runtime
// words) reads it from here: adding a runtime is adding one entry to StandardRuntimes().
//
// Thread rules: entries are immutable after construction and may be read from any thread. The
// interpreter versions are probed once on a worker thread (ProbeVersions) and read on the io
// thread; they are guarded by a mutex.
#pragma once

#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "wisp/common/result.h"

namespace wisp::core {

// The two ways a function's code runs. kHandler: a shim loads the code and calls a handler
// function per event (Lambda's model). kProgram: the code is a whole program run once per
// event with the event in FUNCTION_PAYLOAD, printing its result (the program API's model).
inline constexpr std::string_view kHandlerStyle = "handler";
inline constexpr std::string_view kProgramStyle = "program";
// What a compiled runtime's build leaves in the code directory, and what then runs.
inline constexpr std::string_view kBuildOutputFile = "function";

struct RuntimeEntry {
  std::string name;                  // canonical: stored in records and shown by the APIs
  std::vector<std::string> aliases;  // also accepted on create/update, mapped onto `name`
  // The host binary that runs the runtime's code (mounted read-only into the sandbox at the
  // same path); for a compiled runtime, its toolchain.
  std::string interpreter;
  std::vector<std::string> interpreter_flags;  // before the script, e.g. {"-u"}
  std::vector<std::string> version_args;       // make `interpreter` print its version
  // Instead of running it: a file that holds the version, relative to the directory of the
  // interpreter's real path (a toolchain that compiles user code is run only in a build
  // sandbox, never as root on the host, not even for its version).
  std::string version_file;
  // The handler shim, relative to the runtimes directory; empty: no handler style.
  std::string shim;
  std::string default_module;    // "handler" alone means "<default_module>.handler"
  std::string source_extension;  // a handler module's file is "<module><source_extension>"
  std::string program_file;      // program style: the file the code is written to
  // Program style: the code is compiled at deploy and the build output runs, not the source.
  bool compiled = false;
  // Generic instances (the handler shim, no function yet) can wait ready for a cold start.
  bool prewarmable = false;
  std::string default_style;  // the style of a function that names none
  // A custom runtime: this executable, at the root of the function's code, is the runtime
  // itself and speaks the Runtime API at AWS_LAMBDA_RUNTIME_API (Lambda's `bootstrap`). No
  // interpreter, no shim; the handler is the function's own business (passed as _HANDLER).
  std::string bootstrap;

  bool custom() const { return !bootstrap.empty(); }
  bool supports(std::string_view style) const {
    // A custom runtime is a loop over invocations already: there is no program to run per event.
    if (custom()) return style == kHandlerStyle;
    return style == kProgramStyle || (style == kHandlerStyle && !shim.empty());
  }
};

class RuntimeCatalog {
 public:
  explicit RuntimeCatalog(std::vector<RuntimeEntry> entries);
  RuntimeCatalog(const RuntimeCatalog&) = delete;
  RuntimeCatalog& operator=(const RuntimeCatalog&) = delete;

  // The entry `name_or_alias` names, or null.
  const RuntimeEntry* Find(std::string_view name_or_alias) const;
  // As Find; kInvalidArgument listing every accepted name when it names none.
  Result<const RuntimeEntry*> Resolve(std::string_view name_or_alias) const;
  const std::vector<RuntimeEntry>& entries() const { return entries_; }
  // Every name and alias, canonical names first: "node, python, go, nodejs, ...".
  std::string AcceptedNames() const;

  // The command a program-style function of `entry` runs as, inside the sandbox, with its code
  // in `code_dir` (the build output for a compiled runtime).
  std::vector<std::string> ProgramCommand(const RuntimeEntry& entry,
                                          std::string_view code_dir) const;
  // The program shim's own command line (it is a Python script), before the program's.
  std::vector<std::string> ProgramShimCommand(std::string_view runtime_mount) const;
  // A handler shim's command line inside the sandbox.
  std::vector<std::string> HandlerShimCommand(const RuntimeEntry& entry,
                                              std::string_view runtime_mount) const;
  // A custom runtime's command line: its bootstrap in `code_dir`, with no arguments (as Lambda
  // starts it).
  std::vector<std::string> BootstrapCommand(const RuntimeEntry& entry,
                                            std::string_view code_dir) const;

  // Asks every interpreter (custom runtimes have none) for its version (`<interpreter>
  // <version_args>`, or reads its version_file), each bounded by `timeout`. Blocking (runs
  // processes): call it once, on a worker thread.
  void ProbeVersions(std::chrono::milliseconds timeout);
  // The version the runtime's interpreter reported ("20.20.2"), or nullopt until probed or when
  // it could not say.
  std::optional<std::string> Version(std::string_view name) const;

 private:
  std::vector<RuntimeEntry> entries_;
  mutable std::mutex versions_mutex_;
  std::map<std::string, std::string, std::less<>> versions_;  // guarded by versions_mutex_
};

// Where the standard runtimes' interpreters are on this host (from the configuration).
struct InterpreterPaths {
  std::string node = "/usr/bin/node";
  std::string python = "/usr/bin/python3";
  std::string go = "/usr/bin/go";
};

// The runtimes Wisp ships shims for, and Lambda's custom runtimes. The AWS identifiers listed
// for each run on the one interpreter installed (a nodejs22.x function runs on whichever node
// that is); the function's `runtime_version` says which version that is.
std::vector<RuntimeEntry> StandardRuntimes(const InterpreterPaths& paths);

// The first dotted version number in an interpreter's --version output: "v20.20.2" → "20.20.2",
// "Python 3.11.2" → "3.11.2", "go version go1.19.8 linux/amd64" → "1.19.8"; nullopt if none.
std::optional<std::string> ParseVersion(std::string_view output);

}  // namespace wisp::core
