#pragma once

// A small blocking HTTP/1.1 client over a TCP socket: one request per connection, bodies by
// Content-Length, chunked or to the end of the stream. Enough for wispd's /v1 API and its
// Server-Sent Events, and quick to compile (no Beast in the command-line tool).

#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "wisp/cli/cli_core.h"

namespace wisp::cli {

struct Response {
  int status = 0;
  std::string body;
};

struct TransportError {
  std::string message;
};

// Sends `request` to `server`. With `on_body`, a 2xx answer's body is handed over as it
// arrives (for streams that never end on their own) and Response::body stays empty.
// Returns nullopt with `error` set when no answer could be had (cannot connect, cut off).
std::optional<Response> Send(const ServerUrl& server, const Request& request, TransportError* error,
                             const std::function<void(std::string_view)>& on_body = nullptr);

}  // namespace wisp::cli
