#include "bench/fork_failures.hpp"

namespace forkvm::bench {

void ForkFailures::add(const std::string& error) {
  ++count_;
  if (kept_.size() < kKeep) kept_.push_back(error.substr(0, 300));
}

std::string ForkFailures::note(unsigned attempts) const {
  if (count_ == 0) return "";
  std::string s = std::to_string(count_) + " FAILED fork" + (count_ == 1 ? "" : "s") +
                  " (not samples; retried) out of " + std::to_string(attempts) + " attempts: ";
  for (size_t i = 0; i < kept_.size(); ++i) s += (i ? " | " : "") + kept_[i];
  if (count_ > kept_.size()) s += " | ...";
  return s;
}

}  // namespace forkvm::bench
