#include "tools/cli/add_dir_spec.hpp"

#include "tools/cli/args.hpp"

namespace forkvm::cli {

HostDir parse_add_dir_spec(const std::string& spec) {
  HostDir d;
  std::string rest = spec;
  for (const std::string mode : {":ro", ":rw"}) {
    if (rest.size() > mode.size() && rest.ends_with(mode)) {
      d.writable = mode == ":rw";
      rest.resize(rest.size() - mode.size());
      break;
    }
  }
  const auto colon = rest.find(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == rest.size()) {
    throw UsageError("--add-dir " + spec + ": want HOST:GUEST[:ro|:rw]");
  }
  d.host = rest.substr(0, colon);
  d.guest = rest.substr(colon + 1);
  if (d.guest.find(':') != std::string::npos) {
    throw UsageError("--add-dir " + spec + ": a path with ':' cannot be given");
  }
  return d;
}

}  // namespace forkvm::cli
