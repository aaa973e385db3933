// A small argv parser for the forkvm CLI: long options with values, and `--` ending options.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

namespace forkvm::cli {

/// Thrown for a malformed command line; the message is shown to the user with the usage.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Walks argv. Options look like `--name value` or `--name=value`.
class Args {
 public:
  explicit Args(std::span<char* const> argv);
  /// True while there are arguments left.
  bool more() const noexcept { return pos_ < args_.size(); }
  /// The next argument without consuming it.
  const std::string& peek() const { return args_.at(pos_); }
  /// Consumes the next argument as an option name (returns "--name" with any "=value" split
  /// off into the pending value).
  std::string next_option();
  /// The value of the option just read (from "=value" or the next argument).
  std::string value(const std::string& option);
  /// The value parsed as an unsigned integer in [min, max].
  uint64_t number(const std::string& option, uint64_t min, uint64_t max);
  /// Everything not consumed yet.
  std::vector<std::string> rest();

 private:
  std::vector<std::string> args_;
  size_t pos_ = 0;
  std::optional<std::string> pending_;
};

}  // namespace forkvm::cli
