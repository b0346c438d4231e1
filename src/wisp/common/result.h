// Result<T>: the return type of every operation that can fail for expected reasons (bad input,
// not found, a syscall that failed). Bugs are WISP_CHECKs, never Results.
#pragma once

#include <cerrno>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>

#include <fmt/core.h>
#include <tl/expected.hpp>

namespace wisp {

enum class ErrorCode {
  kInvalidArgument,     // the caller's input is wrong (HTTP 400)
  kNotFound,            // 404
  kAlreadyExists,       // 409
  kFailedPrecondition,  // the object is not in a state that allows this (409)
  kConflict,            // someone else changed the object first (409): read it again, retry
  kTooLarge,            // 413
  kResourceExhausted,   // a limit was hit (429)
  kUnavailable,         // try again later (503)
  kTimeout,
  kInternal,  // a syscall or library failed (500)
};

struct Error {
  ErrorCode code = ErrorCode::kInternal;
  std::string message;

  // A failed syscall: "what: strerror(errno)".
  static Error FromErrno(std::string_view what, int err = errno) {
    return Error{ErrorCode::kInternal, fmt::format("{}: {}", what, std::strerror(err))};
  }
};

template <typename T>
using Result = tl::expected<T, Error>;

inline tl::unexpected<Error> MakeError(ErrorCode code, std::string message) {
  return tl::unexpected<Error>(Error{code, std::move(message)});
}

inline tl::unexpected<Error> ErrnoError(std::string_view what, int err = errno) {
  return tl::unexpected<Error>(Error::FromErrno(what, err));
}

}  // namespace wisp
