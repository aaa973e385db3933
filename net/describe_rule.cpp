// forkvm::describe(const EgressRule&), declared in the public include/forkvm/egress.hpp:
// "allow *.pypi.org ports 443,8000-8080 methods GET,HEAD path /simple/". Fields that are empty
// (any port, any method, any path) are left out. Bytes outside printable ASCII, spaces, quotes
// and backslashes in the host, the methods or the path are written as \xNN (net::escaped), so
// the text is safe to log even for a rule the policy refused.
#include <string>
#include <string_view>

#include "forkvm/egress.hpp"
#include "net/http_text.hpp"

namespace forkvm {

std::string describe(const EgressRule& rule) {
  std::string out = rule.action == EgressAction::kAllow ? "allow " : "deny ";
  out += rule.host.empty() ? std::string("\"\"") : net::escaped(rule.host);
  if (!rule.ports.empty()) {
    out += " ports ";
    for (std::size_t i = 0; i < rule.ports.size(); ++i) {
      const auto [lo, hi] = rule.ports[i];
      if (i > 0) out += ',';
      out += std::to_string(lo);
      if (hi != lo) out += "-" + std::to_string(hi);
    }
  }
  if (!rule.methods.empty()) {
    out += " methods ";
    for (std::size_t i = 0; i < rule.methods.size(); ++i) {
      if (i > 0) out += ',';
      out += net::escaped(rule.methods[i]);
    }
  }
  if (!rule.path_prefix.empty()) out += " path " + net::escaped(rule.path_prefix);
  return out;
}

}  // namespace forkvm
