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
/// new thread installs its own filter. Before `body`, it keeps transparent huge pages off the
/// unused part of its stack (keep_stack_small()). Throws std::system_error as std::thread does.
/// Every thread forkvm keeps per VM or sandbox is started here.
std::thread start_thread(std::function<void()> body);

/// Advises MADV_NOHUGEPAGE on the calling thread's stack below the current frame, and drops
/// what is resident there. glibc maps 8 MiB per thread stack; where transparent huge pages are
/// "always" (Debian 12's kernel; kernels since 6.7 mark MAP_STACK mappings no-huge themselves),
/// a stack whose first touches fall in a 2 MiB-aligned block of that mapping gets a whole 2 MiB
/// page. Measured in kvm-lab: 90 forkvm thread stacks held 33 MiB, ~370 KiB each, with 5
/// threads per sandbox. Afterwards a stack holds only the pages it touches. Best effort: a
/// failure leaves the stack as it was. Not for the main thread (its stack size is found by
/// reading /proc).
void keep_stack_small() noexcept;

/// Starts the helper thread if it is not running. Called by ThreadFilter::install() before the
/// calling thread is filtered, so that the helper is created unfiltered.
void prepare_thread_launcher();

}  // namespace forkvm
