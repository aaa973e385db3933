// The persistent environment and the secrets, shared by the framed protocol (set_env,
// set_secret) and the 5555 metadata protocol (MESSAGES.md "Environment and secrets"):
//   <state_dir>/env          one K=V per line, replaced atomically
//   <state_dir>/secrets/<S>  one file per secret, mode 0600, in a 0700 directory
#pragma once

#include <map>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace forkvm::agent {

/// The env file and secrets directory under one state directory (default /run/forkvm).
class EnvStore {
 public:
  /// Uses `state_dir` (absolute); nothing is created until the first write.
  explicit EnvStore(std::string state_dir);

  /// The persistent env: the env file's K=V lines (a missing file is empty; malformed lines
  /// are skipped).
  [[nodiscard]] std::map<std::string, std::string> load() const;

  /// Applies `env` (a JSON object of string values; an empty value deletes the key). Every
  /// key and value is checked first: one bad entry throws OpError(invalid_argument) naming it
  /// and nothing changes. Throws OpError for I/O failures.
  void set_env(const nlohmann::json& env);

  /// Stores secret `name` ([A-Za-z0-9_-]+, at most 255 bytes) with contents `bytes`, mode 0600,
  /// in the 0700 secrets directory. Throws OpError.
  void set_secret(std::string_view name, std::string_view bytes);

  /// Removes every secret: each file in the secrets directory is overwritten with zeros in
  /// place (same length, fdatasync) before it is unlinked, so its bytes are gone from the
  /// page cache rather than left in freed pages (the guest kernel's init_on_free=1 zeroes
  /// what is freed anyway). Returns how many files were removed; a missing directory is 0.
  /// Throws OpError for I/O failures.
  std::size_t clear_secrets();

  /// <state_dir>/env.
  [[nodiscard]] const std::string& env_file() const noexcept { return env_file_; }
  /// <state_dir>/secrets.
  [[nodiscard]] const std::string& secrets_dir() const noexcept { return secrets_dir_; }

 private:
  std::string state_dir_;
  std::string env_file_;
  std::string secrets_dir_;
};

}  // namespace forkvm::agent
