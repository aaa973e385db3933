#include "guest-init/kernel_cmdline.hpp"

namespace forkvm {
namespace {

// The kernel's isspace() (lib/ctype.c): space, \t \n \v \f \r, and 0xa0 (Latin-1 NBSP).
bool kernel_isspace(char c) {
  const auto u = static_cast<unsigned char>(c);
  return u == ' ' || (u >= '\t' && u <= '\r') || u == 0xa0;
}

std::string_view skip_spaces(std::string_view s) {
  while (!s.empty() && kernel_isspace(s.front())) s.remove_prefix(1);
  return s;
}

// One step of next_arg(): consumes a parameter from the front of `args`.
CmdlineParam next_arg(std::string_view& args) {
  bool in_quote = false;
  bool quoted = false;
  if (args.front() == '"') {
    args.remove_prefix(1);
    in_quote = true;
    quoted = true;
  }
  size_t i = 0;
  size_t equals = 0;  // 0 means "no '='": like the kernel, a leading '=' is not a separator
  for (; i < args.size(); ++i) {
    if (kernel_isspace(args[i]) && !in_quote) break;
    if (equals == 0 && args[i] == '=') equals = i;
    if (args[i] == '"') in_quote = !in_quote;
  }
  // The kernel NUL-terminates in place; track the end of the word and trim it the same way.
  size_t end = i;
  CmdlineParam p;
  if (equals == 0) {
    if (quoted && end > 0 && args[end - 1] == '"') --end;
    p.key = std::string(args.substr(0, end));
  } else {
    p.key = std::string(args.substr(0, equals));
    size_t val_start = equals + 1;
    bool stripped = false;  // the kernel's second check sees the '\0' it wrote in the first
    if (val_start < args.size() && args[val_start] == '"') {
      ++val_start;
      if (args[end - 1] == '"') {
        --end;
        stripped = true;
      }
    }
    if (quoted && !stripped && args[end - 1] == '"') --end;
    p.value = std::string(args.substr(val_start, end > val_start ? end - val_start : 0));
  }
  args.remove_prefix(i < args.size() ? i + 1 : i);
  return p;
}

}  // namespace

std::vector<CmdlineParam> parse_kernel_cmdline(std::string_view cmdline) {
  std::vector<CmdlineParam> params;
  std::string_view rest = skip_spaces(cmdline);
  while (!rest.empty()) {
    params.push_back(next_arg(rest));
    rest = skip_spaces(rest);
  }
  return params;
}

}  // namespace forkvm
