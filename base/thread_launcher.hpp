// start_thread(): how forkvm starts a thread that must not inherit its creator's seccomp filter
// (base/thread_filter.hpp). A filter is inherited by every thread the filtered thread creates,
// and a device worker is usually created on a vCPU thread (the guest's driver activates the
// device by a register write); it must carry its own kind's filter, not the vCPU's. So a
// filtered thread hands the creation to one helper thread per process that is never filtered.
#pragma once

#include <functional>
#include <thread>

namespace forkvm {

/// Starts a thread running `body`, unfiltered: here when the calling thread is not filtered,
/// else on the helper thread (the caller waits for the std::thread, a few microseconds). The
/// new thread installs its own filter. Throws std::system_error as std::thread does.
std::thread start_thread(std::function<void()> body);

/// Starts the helper thread if it is not running. Called by ThreadFilter::install() before the
/// calling thread is filtered, so that the helper is created unfiltered.
void prepare_thread_launcher();

}  // namespace forkvm
