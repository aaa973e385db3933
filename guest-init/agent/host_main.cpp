// forkvm-agent-host: the agent's protocol server on Unix sockets, for tests on a host (the
// host client's tests and tests/unit/agent). Not part of the guest image.
//
//   forkvm-agent-host --listen PATH --metadata PATH --state-dir DIR
//
// PATH sockets are created (an existing socket file is replaced). It prints "listening" on
// stdout once both accept connections, and serves until SIGTERM or SIGINT, which kill every
// running exec. It marks itself a child subreaper so that, like PID 1 in the guest, it reaps
// the orphans of the commands it runs.
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <string_view>

#include "guest-init/agent/server.hpp"

namespace {

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "forkvm-agent-host: %s\nusage: forkvm-agent-host --listen PATH --metadata PATH "
               "--state-dir DIR\n",
               why);
  std::exit(2);
}

int listen_unix(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) usage(("socket path too long: " + path).c_str());
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
  ::unlink(path.c_str());
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(fd, 128) != 0) {
    throw std::runtime_error("bind/listen " + path + ": " + std::strerror(errno));
  }
  return fd;
}

}  // namespace

int main(int argc, char** argv) {
  std::string listen_path, metadata_path, state_dir;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (i + 1 >= argc) usage(("missing value for " + std::string(arg)).c_str());
    if (arg == "--listen") {
      listen_path = argv[++i];
    } else if (arg == "--metadata") {
      metadata_path = argv[++i];
    } else if (arg == "--state-dir") {
      state_dir = argv[++i];
    } else {
      usage(("unknown argument " + std::string(arg)).c_str());
    }
  }
  if (listen_path.empty() || metadata_path.empty() || state_dir.empty()) {
    usage("--listen, --metadata and --state-dir are required");
  }
  if (state_dir.front() != '/') usage("--state-dir must be absolute");
  try {
    ::prctl(PR_SET_CHILD_SUBREAPER, 1);
    forkvm::agent::ServerOptions options;
    options.state_dir = state_dir;
    options.apply_identity = false;  // never reseed, re-clock or rename the host
    const char* path = std::getenv("PATH");
    const char* home = std::getenv("HOME");
    options.base_env = {{"PATH", path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin"},
                        {"HOME", home != nullptr ? home : "/root"},
                        {"TERM", "dumb"}};
    options.extra_signals = {SIGTERM, SIGINT};
    options.max_idle_poll_ms = -1;  // one thread, SIGCHLD blocked: no safety-net wake-ups
    options.log = [](std::string_view line) {
      std::fprintf(stderr, "forkvm-agent-host: %.*s\n", static_cast<int>(line.size()), line.data());
    };
    forkvm::agent::Server* server_ptr = nullptr;
    options.on_signal = [&server_ptr](int) {
      if (server_ptr != nullptr) server_ptr->stop();
    };
    forkvm::agent::Server server(listen_unix(listen_path), listen_unix(metadata_path),
                                 std::move(options));
    server_ptr = &server;
    std::puts("listening");
    std::fflush(stdout);
    server.run();
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "forkvm-agent-host: %s\n", e.what());
    return 1;
  }
}
