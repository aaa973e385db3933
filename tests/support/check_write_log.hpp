// Included by the kvm and e2e tests that fork: from process start, every freeze of a VM made
// from an image checks KVM's dirty log and the write log against a pagemap scan and fails with
// a GuestMemoryError naming the page when a write was missed (memory/guest_memory_written.cpp),
// instead of handing children a stale page. Subprocesses (the forkvm CLI) inherit it.
#pragma once

#include <stdlib.h>

namespace forkvm::test {

[[maybe_unused]] inline const bool kCheckWriteLog = [] {
  ::setenv("FORKVM_CHECK_WRITE_LOG", "1", 1);
  return true;
}();

}  // namespace forkvm::test
