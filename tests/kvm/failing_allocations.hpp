// Out of memory on one thread, on demand: this test binary replaces the global operator new
// (failing_allocations.cpp) so that, while a thread has turned failures on, every allocation it
// makes throws std::bad_alloc, as on a host out of memory. Other threads allocate as usual.
#pragma once

namespace forkvm::test {

/// Turns allocation failures on or off for the calling thread.
void fail_allocations_on_this_thread(bool fail) noexcept;

}  // namespace forkvm::test
