// forkvm::GuestError's constructor (include/forkvm/errors.hpp): out of line so that the console
// tail it carries goes through the one printable-text helper before anyone prints it.
#include "forkvm/errors.hpp"

#include "base/text.hpp"

namespace forkvm {
namespace {

std::string with_tail(const std::string& what, const std::string& tail) {
  return tail.empty() ? what : what + "\n--- guest console (tail) ---\n" + tail;
}

}  // namespace

GuestError::GuestError(const std::string& what, const std::string& console_tail)
    : Error(with_tail(what, printable_lines(console_tail))),
      console_tail_(printable_lines(console_tail)) {}

}  // namespace forkvm
