#include "wisp/cli/http_client.h"

#include <netdb.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

namespace wisp::cli {
namespace {

// A wispd that accepts but never answers must not hang the command. Connecting and sending
// give up after kSendTimeout; an answer may take as long as the longest function timeout (900 s)
// and then some; a stream gets a heartbeat every 15 s, so a minute of silence means it is gone.
constexpr int kSendTimeoutSeconds = 10;
constexpr int kAnswerTimeoutSeconds = 960;
constexpr int kStreamTimeoutSeconds = 60;

void SetTimeout(int fd, int option, int seconds) {
  timeval limit{};
  limit.tv_sec = seconds;
  setsockopt(fd, SOL_SOCKET, option, &limit, sizeof limit);
}

class Socket {
 public:
  explicit Socket(int fd) : fd_(fd) {}
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  ~Socket() {
    if (fd_ >= 0) close(fd_);
  }
  int fd() const { return fd_; }

 private:
  int fd_;
};

int Connect(const ServerUrl& server, std::string* error) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (int rc = getaddrinfo(server.host.c_str(), server.port.c_str(), &hints, &found); rc != 0) {
    *error = fmt::format("cannot resolve {}: {}", server.host, gai_strerror(rc));
    return -1;
  }
  int fd = -1;
  for (addrinfo* a = found; a; a = a->ai_next) {
    fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    SetTimeout(fd, SO_SNDTIMEO, kSendTimeoutSeconds);  // connect() honours it too
    if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) break;
    *error =
        fmt::format("cannot connect to {}:{}: {}", server.host, server.port, std::strerror(errno));
    close(fd);
    fd = -1;
  }
  freeaddrinfo(found);
  return fd;
}

bool WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

// Reads more bytes onto `buffer`; false at the end of the stream or on an error.
bool ReadMore(int fd, std::string& buffer) {
  char chunk[16384];
  errno = 0;  // the caller tells a timeout (EAGAIN) from the end of the stream (0)
  while (true) {
    const ssize_t n = recv(fd, chunk, sizeof chunk, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    buffer.append(chunk, static_cast<size_t>(n));
    return true;
  }
}

std::string Lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

std::optional<Response> Send(const ServerUrl& server, const Request& request, TransportError* error,
                             const std::function<void(std::string_view)>& on_body) {
  std::string why;
  const int fd = Connect(server, &why);
  if (fd < 0) {
    error->message = why;
    return std::nullopt;
  }
  Socket socket(fd);
  SetTimeout(fd, SO_RCVTIMEO, on_body ? kStreamTimeoutSeconds : kAnswerTimeoutSeconds);
  // An IPv6 literal is bracketed in the Host header, as in the URL.
  const std::string host =
      server.host.find(':') == std::string::npos ? server.host : "[" + server.host + "]";
  std::string head =
      fmt::format("{} {}{} HTTP/1.1\r\nHost: {}:{}\r\nConnection: close\r\n", request.method,
                  server.base_path, request.target, host, server.port);
  for (const auto& [name, value] : request.headers) head += name + ": " + value + "\r\n";
  if (!request.body.empty() || request.method == "POST" || request.method == "PUT") {
    head += fmt::format("Content-Length: {}\r\n", request.body.size());
  }
  head += "\r\n";
  if (!WriteAll(fd, head) || !WriteAll(fd, request.body)) {
    error->message =
        fmt::format("the connection to {}:{} broke while sending", server.host, server.port);
    return std::nullopt;
  }

  std::string buffer;
  size_t header_end;
  while ((header_end = buffer.find("\r\n\r\n")) == std::string::npos) {
    if (!ReadMore(fd, buffer)) {
      error->message =
          errno == EAGAIN || errno == EWOULDBLOCK
              ? fmt::format("{}:{} gave no answer within {} s", server.host, server.port,
                            on_body ? kStreamTimeoutSeconds : kAnswerTimeoutSeconds)
              : fmt::format("{}:{} closed the connection without an answer", server.host,
                            server.port);
      return std::nullopt;
    }
  }
  Response response;
  const std::string_view headers(buffer.data(), header_end);
  const size_t space = headers.find(' ');
  if (!headers.starts_with("HTTP/1.") || space == std::string_view::npos) {
    error->message = "the answer is not HTTP: is WISP_URL wispd's address?";
    return std::nullopt;
  }
  response.status = std::atoi(std::string(headers.substr(space + 1, 3)).c_str());
  std::optional<size_t> content_length;
  bool chunked = false;
  size_t line_start = headers.find("\r\n");
  while (line_start != std::string_view::npos) {
    line_start += 2;
    const size_t line_end = headers.find("\r\n", line_start);
    const std::string_view line = headers.substr(line_start, line_end - line_start);
    const size_t colon = line.find(':');
    if (colon != std::string_view::npos) {
      const std::string name = Lower(line.substr(0, colon));
      std::string_view value = line.substr(colon + 1);
      while (value.starts_with(' ')) value.remove_prefix(1);
      if (name == "content-length") content_length = std::stoull(std::string(value));
      if (name == "transfer-encoding" && Lower(value).find("chunked") != std::string::npos) {
        chunked = true;
      }
    }
    line_start = line_end;
  }
  buffer.erase(0, header_end + 4);

  const bool streaming = on_body && response.status >= 200 && response.status < 300;
  const auto deliver = [&](std::string_view data) {
    if (streaming) {
      on_body(data);
    } else {
      response.body.append(data);
    }
  };
  if (chunked) {
    while (true) {
      size_t line_end;
      while ((line_end = buffer.find("\r\n")) == std::string::npos) {
        if (!ReadMore(fd, buffer)) return response;  // cut off: what came is what there is
      }
      const size_t size = std::strtoull(buffer.substr(0, line_end).c_str(), nullptr, 16);
      if (size == 0) return response;
      while (buffer.size() < line_end + 2 + size + 2) {
        if (!ReadMore(fd, buffer)) return response;
      }
      deliver(std::string_view(buffer).substr(line_end + 2, size));
      buffer.erase(0, line_end + 2 + size + 2);
    }
  }
  while (!content_length || buffer.size() < *content_length) {
    if (streaming && !buffer.empty()) {
      if (content_length) *content_length -= buffer.size();
      deliver(buffer);
      buffer.clear();
    }
    if (!ReadMore(fd, buffer)) break;
  }
  if (content_length && buffer.size() > *content_length) buffer.resize(*content_length);
  deliver(buffer);
  return response;
}

}  // namespace wisp::cli
