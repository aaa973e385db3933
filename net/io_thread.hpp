// The one thread that runs every network service of the process (the egress proxies and the
// exposed ports of every sandbox) on one Boost.Asio io_context. One thread for all sandboxes
// keeps threads per sandbox constant (none): a proxy only adds sockets and coroutines.
//
// Handlers run on this thread only, so per-sandbox state touched by them needs no lock; a
// caller on another thread hands work over with post() (see EgressProxy and PortForward).
#pragma once

#include <boost/asio/io_context.hpp>

#include <boost/system/error_code.hpp>

#include <functional>
#include <future>
#include <memory>
#include <vector>

namespace forkvm::net {

/// The process's network io_context, started on first use and stopped at process exit.
boost::asio::io_context& io_context();

/// Whether the calling thread is the network thread (a destructor called from a handler must
/// not wait for that thread).
bool on_io_thread() noexcept;

/// The ending of a service whose state the network thread holds (an EgressProxy, a
/// PortForward): runs `stop` there (inline when called on it), then waits until `finished` is
/// ready, i.e. until the last coroutine holding the state is gone, so nothing of the service
/// runs afterwards. On the network thread itself it cannot wait and returns at once. `stop`
/// must not keep the state alive (it is destroyed after it runs).
void stop_and_wait(std::function<void()> stop, std::future<void> finished);

/// stop_and_wait() for the usual service core (EgressProxy's ProxyCore, PortForward's
/// ForwardCore): one shared with its coroutines, with a `stopping` flag, an `acceptor`, the set
/// `open` of live connections (each with close()) and the promise `finished` its destructor
/// sets. Drops the caller's reference, then on the network thread marks the core stopping,
/// closes the acceptor and every connection (closing ends them, which erases them from the
/// set: a copy is walked), and waits until the last coroutine let go of the core.
template <class Core>
void stop_service(std::shared_ptr<Core>& core) {
  std::future<void> finished = core->finished.get_future();
  std::weak_ptr<Core> weak = core;
  core.reset();
  stop_and_wait(
      [weak] {
        auto alive = weak.lock();
        if (!alive) return;
        alive->stopping = true;
        boost::system::error_code ignored;
        alive->acceptor.close(ignored);
        const std::vector open(alive->open.begin(), alive->open.end());
        for (auto* connection : open) connection->close();
      },
      std::move(finished));
}

}  // namespace forkvm::net
