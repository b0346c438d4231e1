#include "wisp/runtime_api/transport.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <optional>

#include <spdlog/spdlog.h>

namespace wisp::runtime_api {
namespace {

// The socket's family and protocol, for Asio's generic protocol: the kernel knows both.
std::optional<asio::generic::stream_protocol> ProtocolOf(int fd) {
  int family = 0;
  int protocol = 0;
  socklen_t len = sizeof family;
  if (::getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &family, &len) != 0) return std::nullopt;
  len = sizeof protocol;
  if (::getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &protocol, &len) != 0) return std::nullopt;
  return asio::generic::stream_protocol(family, protocol);
}

}  // namespace

SocketTransport::SocketTransport(asio::io_context& io, UniqueFd listener, UniqueFd channel)
    : io_(io), acceptor_(io), channel_(std::move(channel)) {
  if (!listener) return;
  const auto protocol = ProtocolOf(listener.get());
  boost::system::error_code ec;
  if (protocol) acceptor_.assign(*protocol, listener.get(), ec);
  if (!protocol || ec) {
    spdlog::error("runtime endpoint: cannot use the sandbox's listener: {}",
                  protocol ? ec.message() : "not a socket");
    return;  // `listener` closes it
  }
  tcp_ = protocol->family() == AF_INET || protocol->family() == AF_INET6;
  listener.Release();  // the acceptor owns it now
}

SocketTransport::~SocketTransport() { Close(); }

std::vector<RuntimeConnection> SocketTransport::TakeOpenConnections() {
  std::vector<RuntimeConnection> open;
  if (!channel_) return open;
  const auto protocol = ProtocolOf(channel_.get());
  boost::system::error_code ec;
  RuntimeConnection connection(io_);
  if (protocol) connection.assign(*protocol, channel_.get(), ec);
  if (!protocol || ec) {
    spdlog::error("runtime endpoint: cannot use the sandbox's channel: {}",
                  protocol ? ec.message() : "not a socket");
    channel_.Reset();
    return open;
  }
  channel_.Release();  // the connection owns it now
  open.push_back(std::move(connection));
  return open;
}

asio::awaitable<boost::system::error_code> SocketTransport::Accept(RuntimeConnection& connection) {
  if (!acceptor_.is_open()) co_return asio::error::operation_not_supported;
  boost::system::error_code ec;
  co_await acceptor_.async_accept(connection, asio::redirect_error(asio::use_awaitable, ec));
  if (!ec && tcp_) {
    // Replies are written whole; Nagle would only hold back the last segment of one.
    const int on = 1;
    ::setsockopt(connection.native_handle(), IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
  }
  co_return ec;
}

void SocketTransport::Close() {
  boost::system::error_code ec;
  acceptor_.close(ec);
  channel_.Reset();
}

}  // namespace wisp::runtime_api
