// ConsoleInput: forwards the CLI's stdin to the guest's serial console.
#pragma once

#include <termios.h>

#include <atomic>
#include <optional>
#include <thread>

#include "forkvm/vm.hpp"

namespace forkvm::cli {

/// Reads stdin on a thread and feeds it to Vm::send_console_input, retrying while the UART's
/// FIFO is full. On a terminal, echo and line buffering are turned off while it runs (the guest
/// echoes, and a shell wants keys as typed); Ctrl-C still reaches forkvm. Stops at EOF, at
/// stop(), or when destroyed, and restores the terminal.
class ConsoleInput {
 public:
  explicit ConsoleInput(Vm& vm) : vm_(vm) {}
  ~ConsoleInput() { stop(); }
  ConsoleInput(const ConsoleInput&) = delete;
  ConsoleInput& operator=(const ConsoleInput&) = delete;

  /// Starts forwarding. Call once the guest has opened its console (after the agent is ready):
  /// Linux clears the UART FIFOs when it first opens the port, dropping anything sent earlier.
  void start();
  /// Stops forwarding and restores the terminal. Idempotent.
  void stop();

 private:
  void run();

  Vm& vm_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::optional<termios> saved_termios_;
};

}  // namespace forkvm::cli
