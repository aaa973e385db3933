#include <cstring>
#include <string>

#include "base/text.hpp"
#include "forkvm/errors.hpp"

namespace forkvm {

KvmError::KvmError(std::string op, int err, const std::string& hint)
    : Error(op + " failed: " + errno_text(err) + " (errno " + std::to_string(err) + ")" +
            (hint.empty() ? "" : ": " + hint)),
      op_(std::move(op)),
      err_(err) {}

}  // namespace forkvm
