#include "guest-init/agent/env_store.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <vector>
#include <fstream>
#include <sstream>

#include "contract/protocol/field_rules.hpp"
#include "contract/protocol/messages.hpp"
#include "guest-init/agent/atomic_file.hpp"
#include "guest-init/agent/op_error.hpp"

namespace forkvm::agent {
namespace {

namespace code = protocol::code;

// Shows at most this much of a rejected key in a message.
constexpr std::size_t kMaxShownKey = 100;

std::string shown(std::string_view key) {
  return "\"" + std::string(key.substr(0, kMaxShownKey)) + (key.size() > kMaxShownKey ? "..." : "") +
         "\"";
}

}  // namespace

EnvStore::EnvStore(std::string state_dir)
    : state_dir_(std::move(state_dir)),
      env_file_(state_dir_ + "/env"),
      secrets_dir_(state_dir_ + "/secrets") {}

std::map<std::string, std::string> EnvStore::load() const {
  std::map<std::string, std::string> env;
  std::ifstream in(env_file_, std::ios::binary);
  std::string line;
  while (std::getline(in, line)) {
    const auto eq = line.find('=');
    if (eq == std::string::npos) continue;
    std::string key = line.substr(0, eq);
    if (!protocol::valid_env_key(key)) continue;
    env[std::move(key)] = line.substr(eq + 1);
  }
  return env;
}

void EnvStore::set_env(const nlohmann::json& env) {
  if (!env.is_object()) throw OpError(code::kInvalidArgument, "\"env\" must be an object");
  // Guest-controlled: every entry is checked before anything changes.
  for (const auto& [key, value] : env.items()) {
    if (!protocol::valid_env_key(key)) {
      throw OpError(code::kInvalidArgument, "bad env key " + shown(key) +
                                                " (want [A-Za-z_][A-Za-z0-9_]*)");
    }
    if (!value.is_string()) {
      throw OpError(code::kInvalidArgument, "env value of " + shown(key) + " is not a string");
    }
    if (!protocol::valid_env_value(value.get_ref<const std::string&>())) {
      throw OpError(code::kInvalidArgument,
                    "env value of " + shown(key) + " contains a NUL or a newline");
    }
  }
  auto current = load();
  for (const auto& [key, value] : env.items()) {
    const auto& text = value.get_ref<const std::string&>();
    if (text.empty()) {
      current.erase(key);
    } else {
      current[key] = text;
    }
  }
  std::string contents;
  for (const auto& [key, value] : current) contents += key + "=" + value + "\n";
  make_directories(state_dir_, 0755);
  write_file_atomically(env_file_, contents, 0644);
}

void EnvStore::set_secret(std::string_view name, std::string_view bytes) {
  if (!protocol::valid_secret_name(name)) {
    throw OpError(code::kInvalidArgument,
                  "bad secret name " + shown(name) + " (want [A-Za-z0-9_-]+, at most 255 bytes)");
  }
  make_directories(state_dir_, 0755);
  if (::mkdir(secrets_dir_.c_str(), 0700) != 0 && errno != EEXIST) {
    throw errno_error(errno, "mkdir " + secrets_dir_);
  }
  // An existing directory may have been created with other bits: enforce 0700 every time.
  if (::chmod(secrets_dir_.c_str(), 0700) != 0) throw errno_error(errno, "chmod " + secrets_dir_);
  write_file_atomically(secrets_dir_ + "/" + std::string(name), bytes, 0600);
}

std::size_t EnvStore::clear_secrets() {
  const int dir = ::open(secrets_dir_.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (dir < 0) {
    if (errno == ENOENT) return 0;
    throw errno_error(errno, "open " + secrets_dir_);
  }
  std::vector<std::string> names;
  if (DIR* d = ::fdopendir(dir)) {  // owns `dir` from here
    while (const dirent* e = ::readdir(d)) {
      const std::string name = e->d_name;
      if (name != "." && name != "..") names.push_back(name);
    }
    std::size_t removed = 0;
    const std::vector<char> zeros(64 * 1024, 0);
    for (const std::string& name : names) {
      const int f = ::openat(dirfd(d), name.c_str(), O_WRONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
      struct stat st {};
      if (f >= 0 && ::fstat(f, &st) == 0 && S_ISREG(st.st_mode)) {
        for (off_t at = 0; at < st.st_size;) {
          const auto n = std::min<off_t>(st.st_size - at, static_cast<off_t>(zeros.size()));
          const ssize_t w = ::pwrite(f, zeros.data(), static_cast<std::size_t>(n), at);
          if (w < 0 && errno == EINTR) continue;
          if (w <= 0) break;  // unlinked below anyway; its pages are then freed (init_on_free)
          at += w;
        }
        ::fdatasync(f);
      }
      if (f >= 0) ::close(f);
      if (::unlinkat(dirfd(d), name.c_str(), 0) == 0) ++removed;
    }
    ::closedir(d);
    return removed;
  }
  const int err = errno;
  ::close(dir);
  throw errno_error(err, "read " + secrets_dir_);
}

}  // namespace forkvm::agent
