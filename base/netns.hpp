// Doing one thing inside another network namespace without moving the process: a TAP, a
// listening socket or a connected one stays bound to the namespace it was created in, so it
// is enough to create it on a short-lived thread that has entered that namespace.
#pragma once

#include <functional>
#include <string>

namespace forkvm {

/// Why run_in_netns() could not enter a namespace: the step that failed and its errno, or
/// `step == nullptr` when it entered (and ran the function).
struct NetnsEntry {
  const char* step = nullptr;
  int err = 0;
  explicit operator bool() const noexcept { return step == nullptr; }
};

/// Runs `fn` on a fresh thread that first enters the network namespace `netns` (a file such as
/// /var/run/netns/NAME, entered with setns(CLONE_NEWNET)), and joins it. The calling thread's
/// and the process's namespace never change. An exception from `fn` is carried back and
/// rethrown here. When the namespace cannot be opened or entered, `fn` does not run and the
/// result names the step ("open the namespace", "setns(CLONE_NEWNET)") and errno (EPERM without
/// CAP_SYS_ADMIN). An empty `netns` runs `fn` on the calling thread.
NetnsEntry run_in_netns(const std::string& netns, const std::function<void()>& fn);

}  // namespace forkvm
