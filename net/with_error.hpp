// with_error(ec): how every network coroutine awaits an operation. A failed read, write,
// connect or accept is expected (a peer gone, a timer cancelled) and is handled where it
// happens, so the error goes into `ec` instead of being thrown out of the coroutine.
#pragma once

#include <utility>  // before Boost.Asio 1.74's awaitable.hpp, which uses std::exchange

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/error_code.hpp>

namespace forkvm::net {

/// The completion token: `co_await op(..., with_error(ec))`.
inline auto with_error(boost::system::error_code& ec) {
  return boost::asio::redirect_error(boost::asio::use_awaitable, ec);
}

}  // namespace forkvm::net
