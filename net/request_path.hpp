// The path of a plain HTTP request as a path-prefix rule sees it.
//
// A rule's path_prefix is a plain byte prefix of the path as sent, before any query. A server
// may read some paths as another path ("/simple/../admin", "/simple/%2e%2e/admin",
// "/simple//admin", "/simple\admin", "/..;/admin"), which a plain prefix would not see; such
// a path is "not plain", and the policy treats it conservatively: it never matches an ALLOW
// rule that has a path prefix, and it always matches a DENY rule that has one.
#pragma once

#include <string_view>

namespace forkvm::net {

/// `target` up to (not including) the first '?' or '#'.
std::string_view path_without_query(std::string_view target) noexcept;

/// Whether `path` (without its query) reads the same to every server: it starts with '/', and
/// has no "." or ".." segment (also when followed by ';' parameters), no "//", no backslash,
/// and no percent-encoded '.', '/' or '\' (%2e, %2f, %5c in either case).
bool is_plain_path(std::string_view path) noexcept;

}  // namespace forkvm::net
