// Transport: how the runtime inside one sandbox reaches its Runtime API endpoint in wispd. The
// backend that started the sandbox provides it (sandbox::InstanceHandle); the endpoint serves
// whatever connections it yields, alike.
//
// Whatever carries the bytes (a Unix socket pair and loopback TCP in the sandbox's network
// namespace for the process jail; AF_VSOCK, or a virtio-serial port's host-side Unix socket,
// for a microVM), each connection is a stream socket the endpoint reads and writes itself:
// only opening a connection goes through this interface, never a message.
//
// Thread rules: created, used and destroyed on the io thread of the endpoint that owns it.
#pragma once

#include <vector>

#include "wisp/common/asio.h"
#include "wisp/common/unique_fd.h"

namespace wisp::runtime_api {

// One connection between the runtime and the endpoint, of any socket family.
using RuntimeConnection = asio::generic::stream_protocol::socket;

class Transport {
 public:
  virtual ~Transport() = default;

  // The connections already open when the instance starts (the process jail's Unix channel, a
  // microVM's virtio-serial port): served for the instance's life, never counted against the
  // cap on accepted connections. The endpoint takes them once, when it starts.
  virtual std::vector<RuntimeConnection> TakeOpenConnections() = 0;

  // Waits for the next connection the runtime opens (TCP, vsock) and puts it in `connection`.
  // asio::error::operation_not_supported: this transport accepts none; operation_aborted or
  // bad_descriptor: it was closed. Any other error concerned that one connection only (reset
  // before it was accepted): the next Accept may succeed.
  virtual asio::awaitable<boost::system::error_code> Accept(RuntimeConnection& connection) = 0;

  // Stops accepting: a pending Accept ends with operation_aborted. Open connections stay the
  // endpoint's to close.
  virtual void Close() = 0;
};

// A transport made of socket file descriptors: a listening stream socket the runtime connects
// to (any family: AF_INET in the sandbox's network namespace, AF_VSOCK), and a stream socket
// already connected to it (a socket pair, a virtio-serial port's host side). Either may be
// absent.
class SocketTransport final : public Transport {
 public:
  SocketTransport(asio::io_context& io, UniqueFd listener, UniqueFd channel);
  ~SocketTransport() override;
  SocketTransport(const SocketTransport&) = delete;
  SocketTransport& operator=(const SocketTransport&) = delete;

  std::vector<RuntimeConnection> TakeOpenConnections() override;
  asio::awaitable<boost::system::error_code> Accept(RuntimeConnection& connection) override;
  void Close() override;

 private:
  asio::io_context& io_;
  asio::basic_socket_acceptor<asio::generic::stream_protocol> acceptor_;
  bool tcp_ = false;  // the listener is TCP: accepted connections get TCP_NODELAY
  UniqueFd channel_;
};

}  // namespace wisp::runtime_api
