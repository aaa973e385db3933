// Forks that failed during a benchmark: counted, the first few errors kept, and reported next
// to the numbers instead of ending the run (the other samples stay valid; a failed fork is not
// a sample). No KVM, unit-tested.
#pragma once

#include <string>
#include <vector>

namespace forkvm::bench {

/// The failed forks of one part of a benchmark.
class ForkFailures {
 public:
  /// How many errors are kept word for word; later ones are only counted.
  static constexpr size_t kKeep = 3;

  /// Records one failure with its error text.
  void add(const std::string& error);
  unsigned count() const noexcept { return count_; }
  const std::vector<std::string>& kept() const noexcept { return kept_; }
  /// "N failed forks (not samples) out of M attempts: <first errors>", or "" when none failed.
  std::string note(unsigned attempts) const;

 private:
  unsigned count_ = 0;
  std::vector<std::string> kept_;
};

}  // namespace forkvm::bench
