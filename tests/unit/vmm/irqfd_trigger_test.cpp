// IrqfdTrigger's hold: a restored VM's virtio interrupt line remembers the edges its device
// raises before launch() restored the irqchip and sends one when released; an open line sends
// every edge; no edge is lost when a device raises one while the line is being released.
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <thread>

#include <gtest/gtest.h>

#include "vmm/irqfd_trigger.hpp"

namespace forkvm {
namespace {

/// Reads and clears the eventfd's counter (what KVM's irqfd would consume): nullopt when no
/// edge was sent.
std::optional<uint64_t> edges(const IrqfdTrigger& t) {
  uint64_t value = 0;
  if (::read(t.fd(), &value, sizeof(value)) != sizeof(value)) return std::nullopt;
  return value;
}

TEST(IrqfdTrigger, OpenLineSendsEveryEdge) {
  IrqfdTrigger t;
  EXPECT_FALSE(t.held());
  EXPECT_EQ(edges(t), std::nullopt);
  t.trigger();
  t.trigger();
  EXPECT_EQ(edges(t), 2u);
  t.release();  // on an open line: nothing to send
  EXPECT_EQ(edges(t), std::nullopt);
}

TEST(IrqfdTrigger, HeldLineSendsOneEdgeWhenReleased) {
  IrqfdTrigger t(true);
  EXPECT_TRUE(t.held());
  t.trigger();
  t.trigger();
  t.trigger();
  EXPECT_EQ(edges(t), std::nullopt) << "an edge reached KVM while the irqchip was not restored";
  t.release();
  EXPECT_FALSE(t.held());
  EXPECT_EQ(edges(t), 1u);
  t.trigger();  // open from now on
  EXPECT_EQ(edges(t), 1u);
  t.release();
  EXPECT_EQ(edges(t), std::nullopt) << "a second release re-sent an edge";
}

TEST(IrqfdTrigger, HeldLineWithoutEdgesSendsNothing) {
  IrqfdTrigger t(true);
  t.release();
  EXPECT_EQ(edges(t), std::nullopt);
}

TEST(IrqfdTrigger, EdgeRaisedDuringReleaseIsNeverLost) {
  // A device worker raising its interrupt at the moment launch() releases the line: whichever
  // comes first, at least one edge reaches the eventfd. Both sides start each round from the
  // same spin, so they overlap often; the window trigger()'s second look closes is only a few
  // instructions wide, so this is a stress test (and TSan's view of the line's atomics), not a
  // proof. Bounded: 20000 rounds, well under a second.
  constexpr int kRounds = 20000;
  std::unique_ptr<IrqfdTrigger> lines[2];
  std::atomic<int> round{-1};
  std::atomic<int> done{-1};
  IrqfdTrigger* current = nullptr;
  std::thread device([&] {
    for (int r = 0; r < kRounds; ++r) {
      while (round.load() != r) {
      }
      current->trigger();
      done.store(r);
    }
  });
  int lost = 0;
  for (int r = 0; r < kRounds; ++r) {
    auto line = std::make_unique<IrqfdTrigger>(true);
    current = line.get();  // published by the store to `round`
    round.store(r);
    line->release();
    while (done.load() != r) {
    }
    const auto n = edges(*line);
    if (!n) ++lost;
    ASSERT_LE(n.value_or(0), 2u) << "round " << r;
  }
  device.join();
  EXPECT_EQ(lost, 0) << "edges lost out of " << kRounds;
}

}  // namespace
}  // namespace forkvm
