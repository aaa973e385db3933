// The system calls a vCPU thread may make (base/thread_filter.hpp): VcpuThread installs this
// filter on itself when it starts, before it first enters the guest.
#pragma once

#include "base/thread_filter.hpp"

namespace forkvm {

/// The vCPU threads' filter (one per process).
const ThreadFilter& vcpu_thread_filter();

}  // namespace forkvm
