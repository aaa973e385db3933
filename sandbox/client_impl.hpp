// The inside of forkvm::AgentClient: one socket, a reader thread that routes the agent's
// frames to pending requests by id, and a write lock that keeps each frame whole.
//
// Life of a request: new_request() picks an id and encodes the frame (a frame the protocol
// would reject becomes a host-side OperationError, nothing sent), registers a Pending, and
// sends it. The reader thread hands non-terminal frames (started, stdout, file_data, ...) to
// the Pending's on_frame and completes it on the terminal one (ok / error / exit). Waiters
// block on the Pending's condition variable with a deadline. If the connection is lost or the
// agent sends a malformed frame, every pending request fails at once with the same error.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "base/scratch_buffer.hpp"
#include "contract/protocol/frame.hpp"
#include "forkvm/agent_client.hpp"
#include "sandbox/socket_io.hpp"

namespace forkvm::sandbox {

/// One request in flight.
struct Pending {
  uint64_t id = 0;
  std::string op;    ///< request type, for messages
  std::string path;  ///< path it is about, for messages
  /// Called on the reader thread, without `m` held, for each non-terminal frame. May throw:
  /// the exception is stored in callback_error and the waiter decides what to do.
  std::function<void(Pending&, protocol::Frame&)> on_frame;

  std::mutex m;
  std::condition_variable cv;
  // Everything below is guarded by m.
  bool done = false;
  std::optional<protocol::Frame> terminal;  ///< the ok / error / exit frame
  std::exception_ptr error;                 ///< the connection failed under it
  std::exception_ptr callback_error;        ///< on_frame threw
  Clock::time_point last_activity;          ///< when the last frame for it arrived
  bool delivery_stopped = false;            ///< stop_delivery(): on_frame is not called again
  bool started = false;                     ///< exec: "started" arrived
  Clock::time_point started_at;             ///< exec: when it arrived (on the reader thread)
  int pid = 0;                              ///< exec: from "started"
};

}  // namespace forkvm::sandbox

namespace forkvm {

struct AgentClient::Impl {
  /// Connects and exchanges hellos (see AgentClient::connect()). Starts the reader thread.
  explicit Impl(const AgentClientOptions& options);
  /// Takes over `fd`, a connection past its handshake and hellos (see AgentClient::attach()).
  /// The caller starts the reader thread (start_reader()), after writing what must go first.
  Impl(const AgentClientOptions& options, sandbox::UniqueFd fd, uint32_t version);
  ~Impl();
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  /// Encodes `header` (with a fresh id) and `payload`, registers a Pending with `on_frame`,
  /// and sends it. Throws OperationError (host side) for a frame the protocol forbids, or the
  /// connection's error when it is closed.
  std::shared_ptr<sandbox::Pending> new_request(
      nlohmann::json header, std::string payload, const std::string& path,
      std::function<void(sandbox::Pending&, protocol::Frame&)> on_frame = {});
  /// Sends a frame that belongs to an existing request (stdin, file_data, file_end) or a
  /// fire-and-forget one. A failed write closes the connection (a frame may be half sent).
  void send_frame(nlohmann::json header, std::string payload);
  /// Writes one encoded frame whole under write_mutex_, within request_timeout. A failed or
  /// stalled write closes the connection (a half-sent frame cannot be recovered) and rethrows.
  void write_wire(const std::string& wire);
  /// Sends {"type":<type>,"id":<new>,"target":<target>} and waits for its ok / error.
  /// Returns the terminal header.
  nlohmann::json control(std::string_view type, uint64_t target, nlohmann::json extra = {});

  /// Waits until `p` is done, with an inactivity deadline of request_timeout (reset by every
  /// frame for it), or until `hard_deadline`. Throws TimeoutError (and forgets p) when one
  /// passes, the connection's error when it failed. Returns the terminal frame; an "error"
  /// frame is thrown as OperationError.
  protocol::Frame wait_done(sandbox::Pending& p,
                            std::optional<sandbox::Clock::time_point> hard_deadline = std::nullopt,
                            bool idle_timeout = true);
  /// Like wait_done but the terminal "error" is returned, not thrown. With
  /// `break_on_callback_error`, returns nullopt as soon as `p.callback_error` is set while the
  /// request still runs (the caller then cancels it and waits again).
  std::optional<protocol::Frame> wait_terminal(
      sandbox::Pending& p, std::optional<sandbox::Clock::time_point> hard_deadline,
      bool idle_timeout, bool break_on_callback_error = false);
  /// Restarts p's inactivity clock (the host was busy sending, not the agent idle).
  static void touch(sandbox::Pending& p);
  /// Drops a request the host gave up on; later frames for its id are ignored.
  void forget(uint64_t id);
  /// See AgentClient::hold_quiet().
  AgentClient::Quiet hold_quiet();
  /// No call of `p`'s on_frame runs once this returns: later frames are dropped, and a call in
  /// progress on the reader thread is waited for (unless this runs inside it). For a waiter
  /// whose on_frame refers to objects that die when it returns, however it returns.
  void stop_delivery(sandbox::Pending& p);
  /// Closes the connection and fails every pending request with `error`. Idempotent.
  void close(std::exception_ptr error);
  /// close() up to joining the reader: see AgentClient::close_nowait().
  void close_nowait(std::exception_ptr error);
  /// The error requests get once closed (nullptr while open).
  std::exception_ptr closed_error() const;

  AgentClientOptions options;
  uint32_t version = 0;
  /// Frames for ids that are no longer pending (a request the host timed out on, ...), and
  /// non-terminal frames for a request that expects none (dropped).
  std::atomic<uint64_t> stray_frames{0};

  /// Starts the thread that reads the agent's frames: once, after construction.
  void start_reader();

 private:
  void reader_loop();
  void dispatch(protocol::Frame& frame);
  void fail_all(std::exception_ptr error);
  std::exception_ptr lost_error(const std::string& reason);

  sandbox::UniqueFd fd_;
  /// fd_.get(); set to -1 under write_mutex_ and fd_mutex_ once the reader is joined. Writers
  /// read it under write_mutex_, close_nowait() under fd_mutex_, the reader before it is
  /// joined; atomic as well, so that no reader of it depends on which lock it holds.
  std::atomic<int> raw_fd_{-1};
  protocol::FrameDecoder decoder_;
  /// The reader's recv buffer: up to 256 KiB per recv for file transfers, its pages resident
  /// only as recvs fill them (a zeroed vector would hold 256 KiB per sandbox however small its
  /// frames). Made with the client, so that a refused mapping fails here, not on the reader.
  ScratchBuffer read_buf_{256 * 1024};
  std::thread reader_;
  /// The reader thread's id, stored by the reader itself. Every thread asks "am I the reader?"
  /// through this copy, never through reader_, which the joining close() modifies.
  std::atomic<std::thread::id> reader_id_{};
  bool on_reader() const noexcept { return reader_id_.load() == std::this_thread::get_id(); }
  std::atomic<bool> closing_{false};
  std::atomic<bool> shut_down_{false};
  std::atomic<uint64_t> next_id_{1};

  std::mutex write_mutex_;  // one frame at a time on the socket
  std::mutex close_mutex_;  // serializes close()'s join of the reader and closing of fd_
  std::mutex fd_mutex_;     // close_nowait()'s shutdown against close()'s closing of fd_
  std::mutex deliver_mutex_;  // held by the reader while a frame callback runs
  mutable std::mutex map_mutex_;
  std::map<uint64_t, std::shared_ptr<sandbox::Pending>> pending_;
  /// Ids of requests forgotten before their terminal frame came: the agent may still be
  /// answering them, so the connection is not quiet (hold_quiet()). Bounded: past
  /// kMaxForgotten the client stops counting and is never quiet again.
  static constexpr size_t kMaxForgotten = 1024;
  std::set<uint64_t> forgotten_;
  bool forgotten_overflow_ = false;
  /// Bytes of an incomplete frame the reader holds (set by the reader after each read).
  std::atomic<size_t> partial_bytes_{0};
  bool closed_ = false;
  std::exception_ptr closed_error_;
};

}  // namespace forkvm
