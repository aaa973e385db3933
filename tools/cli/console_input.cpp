#include "tools/cli/console_input.hpp"

#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <string_view>

namespace forkvm::cli {

void ConsoleInput::start() {
  if (thread_.joinable()) return;
  termios t{};
  if (isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &t) == 0) {
    saved_termios_ = t;
    t.c_lflag &= ~static_cast<tcflag_t>(ICANON | ECHO);  // keep ISIG: Ctrl-C stops forkvm
    t.c_cc[VMIN] = 1;
    t.c_cc[VTIME] = 0;
    tcsetattr(STDIN_FILENO, TCSANOW, &t);
  }
  thread_ = std::thread([this] { run(); });
}

void ConsoleInput::stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  if (saved_termios_) {
    tcsetattr(STDIN_FILENO, TCSANOW, &*saved_termios_);
    saved_termios_.reset();
  }
}

void ConsoleInput::run() {
  char buf[256];
  while (!stop_) {
    // Poll with a timeout so stop() is noticed even while stdin stays silent.
    pollfd p{STDIN_FILENO, POLLIN, 0};
    const int ready = poll(&p, 1, 100);
    if (ready < 0 && errno != EINTR) return;
    if (ready <= 0) continue;
    const ssize_t n = read(STDIN_FILENO, buf, sizeof buf);
    if (n == 0) return;  // EOF: nothing more to send
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return;
    }
    std::string_view rest(buf, static_cast<size_t>(n));
    while (!rest.empty() && !stop_) {
      const size_t taken = vm_.send_console_input(rest);
      rest.remove_prefix(taken);
      // The guest drains the 64-byte FIFO at its own pace; wait a little when it is full.
      if (taken == 0) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  }
}

}  // namespace forkvm::cli
