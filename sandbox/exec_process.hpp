// The inside of forkvm::ExecProcess, and AgentClient::start()'s work (start_exec).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "forkvm/agent_client.hpp"
#include "sandbox/client_impl.hpp"

namespace forkvm::sandbox {

/// What the host accepted of one output stream of an exec.
struct StreamTally {
  uint64_t bytes = 0;      ///< delivered or collected so far (never more than the cap)
  bool truncated = false;  ///< the agent sent more than the cap; the rest was dropped here
};

/// Output of one exec: delivered to callbacks or collected. Written only by the reader thread
/// before the exec's Pending is marked done, read only after (ordered by Pending::m).
struct ExecStreams {
  ExecCallbacks callbacks;
  /// ExecOptions::max_output_bytes, enforced again on the host per stream (the agent may lie).
  uint64_t cap = 0;
  std::string out;
  std::string err;
  StreamTally out_tally;
  StreamTally err_tally;
};

/// The part of `bytes` that still fits under `cap` on a stream whose tally is `t` (counted
/// into it); marks the stream truncated when some of `bytes` does not fit.
std::string_view take_within_cap(StreamTally& t, uint64_t cap, std::string_view bytes);

/// Sends the exec request, waits for "started" (or a start failure, thrown as
/// OperationError), and sends ExecOptions::stdin_data when given.
std::unique_ptr<ExecProcess> start_exec(const std::shared_ptr<AgentClient::Impl>& client,
                                        const std::vector<std::string>& argv,
                                        const std::string& shell, const ExecOptions& options,
                                        const ExecCallbacks& callbacks);

}  // namespace forkvm::sandbox

namespace forkvm {

struct ExecProcess::Impl {
  std::shared_ptr<AgentClient::Impl> client;
  std::shared_ptr<sandbox::Pending> pending;
  std::shared_ptr<sandbox::ExecStreams> streams;
  bool stdin_open = false;  ///< interactive stdin not yet closed (guarded by mutex)
  std::optional<std::chrono::milliseconds> guest_timeout;
  sandbox::Clock::time_point requested_at;  ///< the request was sent
  sandbox::Clock::time_point started_at;    ///< its "started" arrived (reader thread's clock)
  std::mutex mutex;               ///< guards stdin_open, cancel_sent, outcome
  bool cancel_sent = false;
  std::optional<ExecResult> result;  ///< the outcome, once known (wait() may be repeated)
  std::exception_ptr failure;
  /// Run once, by the wait() that settles a result (not a failure), on the waiting thread and
  /// outside every lock of the exec: Sandbox::start's first-exec hook. Guarded by mutex.
  std::function<void()> after_end;

  /// Sends a cancel for this exec and ignores "not running".
  void send_cancel();
  /// Waits until the end or `deadline`; nullopt at the deadline.
  std::optional<ExecResult> wait_until(std::optional<sandbox::Clock::time_point> deadline);
  /// For a timeout's message: the guest pid, how long ago "started" and the last frame came.
  std::string progress() const;
};

}  // namespace forkvm
