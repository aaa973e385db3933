#include "forkvm/sandbox_errors.hpp"

#include <array>
#include <utility>

namespace forkvm {
namespace {

struct KindName {
  ErrorKind kind;
  std::string_view code;
};

// The codes of contract/protocol/messages.hpp (namespace code), in ErrorKind order.
constexpr std::array<KindName, 15> kKinds{{
    {ErrorKind::kNotFound, "not_found"},
    {ErrorKind::kPermissionDenied, "permission_denied"},
    {ErrorKind::kExists, "exists"},
    {ErrorKind::kNotADirectory, "not_a_directory"},
    {ErrorKind::kIsADirectory, "is_a_directory"},
    {ErrorKind::kNotEmpty, "not_empty"},
    {ErrorKind::kNoSpace, "no_space"},
    {ErrorKind::kReadOnly, "read_only"},
    {ErrorKind::kInvalidArgument, "invalid_argument"},
    {ErrorKind::kTooLarge, "too_large"},
    {ErrorKind::kNotRunning, "not_running"},
    {ErrorKind::kCancelled, "cancelled"},
    {ErrorKind::kUnsupported, "unsupported"},
    {ErrorKind::kIo, "io"},
    {ErrorKind::kInternal, "internal"},
}};

std::string describe(ErrorKind kind, const std::string& op, const std::string& path,
                     const std::string& message, bool from_guest) {
  std::string s = op;
  if (!path.empty()) s += " " + path;
  s += ": ";
  s += to_string(kind);
  if (!message.empty()) s += ": " + message;
  if (!from_guest) s += " (host side)";
  return s;
}

}  // namespace

std::string_view to_string(ErrorKind kind) noexcept {
  for (const auto& k : kKinds) {
    if (k.kind == kind) return k.code;
  }
  return "unknown";
}

ErrorKind error_kind_from_code(std::string_view code) noexcept {
  for (const auto& k : kKinds) {
    if (k.code == code) return k.kind;
  }
  return ErrorKind::kUnknown;
}

OperationError::OperationError(ErrorKind kind, std::string op, std::string path,
                               std::string message, std::optional<int> sys_errno,
                               bool from_guest)
    : Error(describe(kind, op, path, message, from_guest)),
      kind_(kind),
      op_(std::move(op)),
      path_(std::move(path)),
      message_(std::move(message)),
      errno_(sys_errno),
      from_guest_(from_guest) {}

}  // namespace forkvm
