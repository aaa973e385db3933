#include "tests/kvm/failing_allocations.hpp"

#include <cstdlib>
#include <new>

namespace forkvm::test {
namespace {
thread_local bool t_fail = false;

void* allocate(std::size_t size) {
  if (t_fail) throw std::bad_alloc();
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
}  // namespace

void fail_allocations_on_this_thread(bool fail) noexcept { t_fail = fail; }

}  // namespace forkvm::test

// The replacements (the unaligned forms; the library allocates nothing over-aligned on these
// paths). Deletes go with them, so every block is malloc's.
void* operator new(std::size_t size) { return forkvm::test::allocate(size); }
void* operator new[](std::size_t size) { return forkvm::test::allocate(size); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
