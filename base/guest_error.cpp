// forkvm::GuestError's constructor (include/forkvm/errors.hpp): out of line so that the console
// tail it carries goes through the one printable-text helper before anyone prints it.
#include "forkvm/errors.hpp"

#include "base/text.hpp"
#include "base/vcpu_gs_mark.hpp"

namespace forkvm {
namespace {

std::string with_tail(const std::string& what, const std::string& tail) {
  if (tail.empty()) return what;
  // In a lab that marks its vCPU threads (base/vcpu_gs_mark.hpp), say so when the guest's
  // oops shows the mark: the reader should not hunt for a guest bug first.
  const std::string mark = vcpu_gs_mark_note(tail);
  return what + (mark.empty() ? "" : " [" + mark + "]") + "\n--- guest console (tail) ---\n" + tail;
}

}  // namespace

GuestError::GuestError(const std::string& what, const std::string& console_tail)
    : Error(with_tail(what, printable_lines(console_tail))),
      console_tail_(printable_lines(console_tail)) {}

}  // namespace forkvm
