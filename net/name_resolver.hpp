// Name lookups for the network thread: getaddrinfo on a thread of forkvm's own, which runs
// under its own seccomp filter. (Asio's resolver would run them on a private thread forkvm
// cannot filter.) A guest chooses the names the proxy resolves, and with a name whose DNS
// server it controls, the answers too: glibc's parsing of those answers runs filtered.
//
// One thread for the process, started at the first lookup; lookups run one after another, as
// in Asio's resolver. The answer is posted to the caller's executor.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/post.hpp>
#include <boost/system/error_code.hpp>

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace forkvm::net {

/// What a lookup found: the addresses, deduplicated, in getaddrinfo's order.
using ResolvedAddresses = std::vector<boost::asio::ip::address>;

/// Queues a lookup of `host` (a validated DNS name, net/host_name.hpp) for IPv4 and IPv6 stream
/// addresses, of families the host has configured (AI_ADDRCONFIG). `done` runs on the resolver
/// thread with the result or an error of boost::asio::error's netdb kind (host_not_found,
/// host_not_found_try_again, ...), or a system error. Never blocks.
void queue_name_lookup(std::string host,
                       std::function<void(boost::system::error_code, ResolvedAddresses)> done);

/// A lookup in flight that its owner may give up on (EgressConnection::close, the lookup's
/// deadline): it then completes with operation_aborted once getaddrinfo returns (a lookup
/// cannot be interrupted, as with Asio's resolver).
class LookupCancel {
 public:
  void cancel() noexcept { cancelled_->store(true); }
  std::shared_ptr<std::atomic<bool>> flag() const { return cancelled_; }

 private:
  std::shared_ptr<std::atomic<bool>> cancelled_ = std::make_shared<std::atomic<bool>>(false);
};

/// Resolves `host` on the resolver thread and completes `token` (e.g. use_awaitable) on
/// `executor` with (error_code, ResolvedAddresses).
template <class Token>
auto async_resolve_name(boost::asio::any_io_executor executor, std::string host,
                        const LookupCancel& cancel, Token&& token) {
  return boost::asio::async_initiate<Token, void(boost::system::error_code, ResolvedAddresses)>(
      [](auto handler, boost::asio::any_io_executor ex, std::string name,
         std::shared_ptr<std::atomic<bool>> cancelled) {
        // The handler is move-only; the lookup's callback is a std::function (copyable).
        auto h = std::make_shared<decltype(handler)>(std::move(handler));
        queue_name_lookup(std::move(name), [h, ex, cancelled](boost::system::error_code ec,
                                                               ResolvedAddresses found) {
          boost::asio::post(ex, [h, cancelled, ec, found = std::move(found)]() mutable {
            if (cancelled->load()) ec = boost::asio::error::operation_aborted;
            (*h)(ec, std::move(found));
          });
        });
      },
      token, std::move(executor), std::move(host), cancel.flag());
}

}  // namespace forkvm::net
