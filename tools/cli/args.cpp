#include "tools/cli/args.hpp"

#include <charconv>
#include <utility>

namespace forkvm::cli {

Args::Args(std::span<char* const> argv) {
  for (char* a : argv) args_.emplace_back(a);
}

std::string Args::next_option() {
  std::string a = args_.at(pos_++);
  pending_.reset();
  if (a.rfind("--", 0) == 0) {
    const auto eq = a.find('=');
    if (eq != std::string::npos) {
      pending_ = a.substr(eq + 1);
      a.resize(eq);
    }
  }
  return a;
}

std::string Args::value(const std::string& option) {
  if (pending_) return *std::exchange(pending_, std::nullopt);
  if (!more()) throw UsageError(option + " needs a value");
  return args_[pos_++];
}

uint64_t Args::number(const std::string& option, uint64_t min, uint64_t max) {
  const std::string v = value(option);
  uint64_t n = 0;
  const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (ec != std::errc() || end != v.data() + v.size()) {
    throw UsageError(option + ": '" + v + "' is not a number");
  }
  if (n < min || n > max) {
    throw UsageError(option + ": " + v + " is out of range [" + std::to_string(min) + ", " +
                     std::to_string(max) + "]");
  }
  return n;
}

std::vector<std::string> Args::rest() {
  std::vector<std::string> r(args_.begin() + static_cast<std::ptrdiff_t>(pos_), args_.end());
  pos_ = args_.size();
  return r;
}

}  // namespace forkvm::cli
