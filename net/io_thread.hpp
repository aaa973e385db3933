// The one thread that runs every network service of the process (the egress proxies and the
// exposed ports of every sandbox) on one Boost.Asio io_context. One thread for all sandboxes
// keeps threads per sandbox constant (none): a proxy only adds sockets and coroutines.
//
// Handlers run on this thread only, so per-sandbox state touched by them needs no lock; a
// caller on another thread hands work over with post() (see EgressProxy and PortForward).
#pragma once

#include <boost/asio/io_context.hpp>

namespace forkvm::net {

/// The process's network io_context, started on first use and stopped at process exit.
boost::asio::io_context& io_context();

/// Whether the calling thread is the network thread (a destructor called from a handler must
/// not wait for that thread).
bool on_io_thread() noexcept;

}  // namespace forkvm::net
