// ConsoleRelay: hands the serial console's output to the embedder's callback
// (VmConfig::console) on a thread of its own, so a slow callback never stalls the vCPU that
// wrote the bytes. The vCPU thread only appends to a bounded queue; bytes that do not fit are
// dropped and counted (the console tail, Vm::console_tail(), still has the latest ones).
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

namespace forkvm {

class ConsoleRelay {
 public:
  /// At most `capacity` bytes wait for the callback.
  explicit ConsoleRelay(size_t capacity) : capacity_(capacity) {}
  /// stop().
  ~ConsoleRelay();
  ConsoleRelay(const ConsoleRelay&) = delete;
  ConsoleRelay& operator=(const ConsoleRelay&) = delete;

  /// Starts the thread that calls `callback` with the queued bytes (in order, in as few calls
  /// as the queue allows). Once; not after stop(). Throws std::system_error when the thread
  /// cannot start.
  void start(std::function<void(std::string_view)> callback);
  /// Queues `bytes` for the callback (a vCPU thread): never waits for the callback. The part
  /// past the capacity is dropped and counted. Nothing before start() or after stop().
  void push(std::string_view bytes) noexcept;
  /// Hands what is queued to the callback, then stops and joins the thread. Idempotent.
  void stop() noexcept;
  /// Ends the calls for good without joining: what is queued or pushed later is dropped, and
  /// no call starts once this returns. A call in progress is waited for, unless this runs
  /// inside it (on the relay's thread), where waiting would never end.
  void mute() noexcept;

  /// Bytes dropped because the queue was full.
  uint64_t dropped() const;
  /// Bytes handed to the callback.
  uint64_t delivered() const;

 private:
  void run();
  /// Logs the callback's first exception.
  void report_failure(const char* what) noexcept;

  const size_t capacity_;
  std::function<void(std::string_view)> callback_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::string queue_;
  bool running_ = false;
  bool stopping_ = false;
  uint64_t dropped_ = 0;
  uint64_t delivered_ = 0;
  bool callback_failed_ = false;
  bool muted_ = false;         // guarded by mu_
  std::mutex call_mu_;         // held by run() while the callback runs
  std::thread thread_;
};

}  // namespace forkvm
