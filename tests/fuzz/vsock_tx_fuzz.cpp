// Fuzz target: the vsock device's TX path over in-memory guest RAM (fuzz_input.hpp QueueInput
// for the TX queue). As the worker does (vsock_worker.cpp process_tx): every chain popped goes
// through handle_tx_chain (header read and validate_tx, payload copy, verdict) into a real
// muxer whose host side is a real Unix listener, with a host program listening on guest port
// 1234 (so a guest REQUEST to it connects and the connection's RW, credit and shutdown paths
// are reached). Then the host side writes to every connection it accepted and the muxer's
// events, deadlines and RX packets are processed, as the worker's loop does after TX.
#include <sys/epoll.h>
#include <sys/socket.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <vector>

#include "devices/virtio/queue.hpp"
#include "devices/virtio/vsock/packet.hpp"
#include "devices/virtio/vsock/unix_socket.hpp"
#include "devices/virtio/vsock/vsock_tx.hpp"
#include "devices/virtio/vsock/vsock_worker.hpp"
#include "memory/guest_memory.hpp"
#include "tests/fuzz/fuzz_input.hpp"
#include "tests/support/temp_dir.hpp"

using namespace forkvm;
using namespace forkvm::vsock;

namespace {

constexpr uint64_t kGuestCid = 3;
constexpr uint32_t kListeningPort = 1234;

// The host side, made once: the device's listener and a host program's listener on port 1234.
struct Host {
  test::TempDir dir{"fvfuzz"};
  UnixListener device{dir / "v.sock"};
  UnixListener program{dir / ("v.sock_" + std::to_string(kListeningPort))};
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const GuestMemory mem = GuestMemory::create_anonymous(fuzz::kGuestRamBytes);
  static Host host;
  static std::vector<uint8_t> payload(kMaxPayload);
  fuzz::ByteReader in(data, size);
  const fuzz::QueueInput qi = fuzz::read_queue_input(in, mem);
  Queue tx = fuzz::make_queue(qi);
  if (!tx.validate(mem)) return 0;

  const auto now = Clock::now();
  VsockSession session(kGuestCid, host.device);
  VsockMuxer& muxer = session.muxer;
  while (!muxer.backlogged()) {
    auto chain = tx.pop_chain(mem);
    if (!chain) break;
    (void)handle_tx_chain(mem, *chain, kGuestCid, muxer, payload, now);
    if (!tx.add_used(mem, chain->head(), 0)) break;
  }
  // The host program answers every connection the guest opened, then the worker's loop runs
  // once: socket events, deadlines (a little later, so the connection timers fire), RX.
  std::vector<Fd> accepted;
  while (Fd fd = host.program.accept()) {
    const char hello[] = "hello from the host";
    (void)::send(fd.get(), hello, sizeof hello, MSG_NOSIGNAL | MSG_DONTWAIT);
    accepted.push_back(std::move(fd));
  }
  muxer.sync(now);
  std::array<epoll_event, 64> events{};
  const int n = session.epoll.wait(events, 0);
  for (int i = 0; i < n; ++i) {
    const auto& e = events[static_cast<size_t>(i)];
    if (VsockMuxer::owns(e.data.u64)) muxer.on_event(e.data.u64, e.events, now);
  }
  muxer.on_timer(now + std::chrono::seconds(30));
  for (int i = 0; i < 256 && muxer.has_rx_work(); ++i) {
    if (!muxer.next_rx(kMaxPayload, now)) break;
  }
  muxer.sync(now);
  return 0;
}
