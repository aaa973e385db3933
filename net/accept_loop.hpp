// The accept loop of every network service (EgressProxy's guest listener, PortForward's host
// listener): one coroutine on the network thread per listening socket.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/system/error_code.hpp>

#include <chrono>
#include <memory>
#include <utility>

#include "net/with_error.hpp"

namespace forkvm::net {

/// How long a service's accept loop pauses after an accept error such as EMFILE, so that a
/// full fd table is not a busy loop on the network thread.
inline constexpr std::chrono::milliseconds kAcceptBackoff{100};

/// Accepts on `core->acceptor` and hands each accepted socket to `serve(core, socket)` (on the
/// network thread, which it must not block), until the core is stopping (stop_service in io_thread.hpp)
/// or its acceptor is closed. Any other accept error (EMFILE, ENFILE, ECONNABORTED, ...) is
/// retried after kAcceptBackoff. `Core` is a service core as stop_service() describes it.
template <class Core, class Serve>
boost::asio::awaitable<void> accept_each(std::shared_ptr<Core> core, Serve serve) {
  boost::asio::steady_timer backoff(co_await boost::asio::this_coro::executor);
  for (;;) {
    boost::system::error_code ec;
    auto socket = co_await core->acceptor.async_accept(with_error(ec));
    if (core->stopping) co_return;
    if (ec) {
      if (ec == boost::asio::error::operation_aborted || !core->acceptor.is_open()) co_return;
      backoff.expires_after(kAcceptBackoff);
      co_await backoff.async_wait(with_error(ec));
      continue;
    }
    serve(core, std::move(socket));
  }
}

}  // namespace forkvm::net
