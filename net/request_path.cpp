#include "net/request_path.hpp"

#include "net/http_text.hpp"

namespace forkvm::net {

std::string_view path_without_query(std::string_view target) noexcept {
  return target.substr(0, target.find_first_of("?#"));
}

bool is_plain_path(std::string_view path) noexcept {
  if (path.empty() || path[0] != '/') return false;
  if (path.find('\\') != std::string_view::npos) return false;
  if (path.find("//") != std::string_view::npos) return false;
  for (std::size_t i = 0; i + 2 < path.size(); ++i) {
    if (path[i] != '%') continue;
    const std::string_view escape = path.substr(i + 1, 2);
    if (iequals(escape, "2e") || iequals(escape, "2f") || iequals(escape, "5c")) return false;
  }
  std::size_t start = 1;
  while (start <= path.size()) {
    std::size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    std::string_view segment = path.substr(start, end - start);
    segment = segment.substr(0, segment.find(';'));  // "..;x" is ".." to some servers
    if (segment == "." || segment == "..") return false;
    start = end + 1;
  }
  return true;
}

}  // namespace forkvm::net
