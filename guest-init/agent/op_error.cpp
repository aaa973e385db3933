#include "guest-init/agent/op_error.hpp"

#include <cerrno>
#include <cstring>

#include "contract/protocol/field_rules.hpp"
#include "contract/protocol/messages.hpp"

namespace forkvm::agent {

namespace code = protocol::code;

std::string_view code_for_errno(int err) noexcept {
  switch (err) {
    case ENOENT: return code::kNotFound;
    case EACCES:
    case EPERM: return code::kPermissionDenied;
    case EEXIST: return code::kExists;
    case ENOTDIR: return code::kNotADirectory;
    case EISDIR: return code::kIsADirectory;
    case ENOTEMPTY: return code::kNotEmpty;
    case ENOSPC:
    case EDQUOT: return code::kNoSpace;
    case EROFS: return code::kReadOnly;
    case EINVAL:
    case ENAMETOOLONG: return code::kInvalidArgument;
    default: return code::kIo;
  }
}

OpError errno_error(int err, const std::string& what) {
  return OpError(code_for_errno(err), what + ": " + std::strerror(err), err);
}

void check_path(std::string_view field, std::string_view path) {
  if (auto problem = protocol::path_problem(path)) {
    throw OpError(code::kInvalidArgument, "\"" + std::string(field) + "\": " + *problem);
  }
}

}  // namespace forkvm::agent
