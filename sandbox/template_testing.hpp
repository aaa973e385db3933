// TemplateTesting: what the e2e tests do to a Template's pool that no caller needs to, kept out
// of the public header.
#pragma once

#include <cstddef>

#include "forkvm/template.hpp"

namespace forkvm {

struct TemplateTesting {
  /// Stops every VM waiting in `t`'s pool (Vm::request_stop), leaving it there: the state a
  /// pooled VM is in after one of its device workers failed (its devices run from
  /// Vm::prepare() on), which fork() must find and discard. Returns how many it stopped.
  static size_t stop_pooled(Template& t);
};

}  // namespace forkvm
