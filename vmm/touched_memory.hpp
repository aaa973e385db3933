// What an image learns from its VMs' first execs (VmImage::first_touches()): the union of what
// the first few of them touched, so that one VM whose guest happened to skip some pages (a
// timer's work that fell just after its first exec, say) does not leave every later VM to
// fault them in.
#pragma once

#include <cstdint>

#include "forkvm/vm.hpp"

namespace forkvm {

/// How many VMs of an image tell it what their first exec touched (Vm::teach_first_touches()):
/// the first one's pages, then what each of the next ones adds. Each lesson reads the VM's
/// pagemap after its first exec (a few milliseconds on the caller's thread), so there are few.
inline constexpr unsigned kFirstTouchLessons = 3;

/// The pages either of `a` or `b` touched: written where either wrote, read where either read
/// and neither wrote (a written page is copied, which maps it too). Both lists come out sorted,
/// with overlapping and adjacent ranges joined.
TouchedMemory united_touches(const TouchedMemory& a, const TouchedMemory& b);

}  // namespace forkvm
