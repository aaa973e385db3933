// kvm tier: KVM_IOEVENTFD and KVM_IRQFD as the virtio-mmio transport uses them. A guest's
// QueueNotify write whose value is a registered queue index is served inside KVM (no exit,
// the queue's eventfd becomes readable); any other value or width exits and reaches the
// transport on the MMIO bus, which counts and ignores it.
#include <gtest/gtest.h>

#include <cerrno>

#include "base/event_fd.hpp"
#include "devices/virtio/mmio_transport.hpp"
#include "forkvm/errors.hpp"
#include "tests/kvm/test_guest.hpp"

namespace forkvm::test {
namespace {

using Bytes = std::vector<uint8_t>;

void append(Bytes& code, std::initializer_list<uint8_t> bytes) { code.insert(code.end(), bytes); }
void append_u64(Bytes& code, uint64_t v) {
  for (int i = 0; i < 8; ++i) code.push_back(static_cast<uint8_t>(v >> (8 * i)));
}

/// A two-queue device that is never activated here; it only gives the transport a shape.
class IdleDevice : public VirtioDevice {
 public:
  std::string name() const override { return "idle"; }
  uint32_t device_id() const noexcept override { return 99; }
  uint64_t device_features() const noexcept override { return virtio_feature::kVersion1; }
  std::vector<uint16_t> queue_max_sizes() const override { return {8, 8}; }
  void read_config(uint64_t, std::span<uint8_t>) const noexcept override {}
  void write_config(uint64_t, std::span<const uint8_t>) noexcept override {}
  void activate(VirtioActivation) override {}
  void reset() noexcept override {}
};

class NoTrigger : public InterruptTrigger {
 public:
  void trigger() noexcept override {}
};

/// movabs rbx, kMmioBase; then `body`; then hlt.
Bytes program(std::initializer_list<uint8_t> body) {
  Bytes code;
  append(code, {0x48, 0xBB});
  append_u64(code, kMmioBase);
  append(code, body);
  append(code, {0xF4});
  return code;
}

constexpr uint64_t kNotify = kMmioBase + virtio_mmio::kQueueNotify;

TEST(KvmIoeventfd, MatchingQueueNotifyWritesDoNotExit) {
  TestGuest g(program({
      0xC7, 0x43, 0x50, 0x01, 0x00, 0x00, 0x00,  // mov dword [rbx+0x50], 1
      0xC7, 0x43, 0x50, 0x00, 0x00, 0x00, 0x00,  // mov dword [rbx+0x50], 0
      0xC7, 0x43, 0x50, 0x01, 0x00, 0x00, 0x00,  // mov dword [rbx+0x50], 1
      0xC7, 0x43, 0x50, 0x07, 0x00, 0x00, 0x00,  // mov dword [rbx+0x50], 7 (no such queue)
      0x66, 0xC7, 0x43, 0x50, 0x01, 0x00,        // mov word [rbx+0x50], 1  (wrong width)
  }));
  auto transport =
      std::make_shared<VirtioMmioTransport>(std::make_shared<IdleDevice>(), g.memory,
                                            std::make_shared<NoTrigger>());
  g.mmio.insert(transport, kMmioBase, 0x1000);
  for (uint32_t q = 0; q < 2; ++q) g.vm.register_ioeventfd(kNotify, 4, q, transport->queue_event(q));

  const auto exits = g.run_until_hlt();
  ASSERT_EQ(exits.size(), 3u);
  EXPECT_EQ(exits[0], "mmio write 0xd0000050 len 4");
  EXPECT_EQ(exits[1], "mmio write 0xd0000050 len 2");
  EXPECT_EQ(exits[2], "hlt");
  EXPECT_EQ(transport->ignored_accesses(), 2u);  // value 7, then the 2-byte write

  uint64_t count = 0;
  ASSERT_EQ(::read(transport->queue_event(0), &count, sizeof count), 8);
  EXPECT_EQ(count, 1u);
  ASSERT_EQ(::read(transport->queue_event(1), &count, sizeof count), 8);
  EXPECT_EQ(count, 2u);
}

TEST(KvmIoeventfd, UnregisteredNotifyExitsAndTheTransportSignals) {
  TestGuest g(program({
      0xC7, 0x43, 0x50, 0x01, 0x00, 0x00, 0x00,  // mov dword [rbx+0x50], 1
  }));
  auto transport =
      std::make_shared<VirtioMmioTransport>(std::make_shared<IdleDevice>(), g.memory,
                                            std::make_shared<NoTrigger>());
  g.mmio.insert(transport, kMmioBase, 0x1000);
  const int fd = transport->queue_event(1);
  g.vm.register_ioeventfd(kNotify, 4, 1, fd);
  g.vm.unregister_ioeventfd(kNotify, 4, 1, fd);
  try {
    g.vm.unregister_ioeventfd(kNotify, 4, 1, fd);  // nothing left to remove
    ADD_FAILURE() << "a second unregister succeeded";
  } catch (const KvmError& e) {
    EXPECT_EQ(e.op(), "KVM_IOEVENTFD(DEASSIGN)");
  }

  const auto exits = g.run_until_hlt();
  ASSERT_EQ(exits.size(), 2u);
  EXPECT_EQ(exits[0], "mmio write 0xd0000050 len 4");
  uint64_t count = 0;
  ASSERT_EQ(::read(fd, &count, sizeof count), 8);  // signalled by the transport this time
  EXPECT_EQ(count, 1u);
}

TEST(KvmIrqfd, RegistersOncePerEventfd) {
  KvmSystem kvm = KvmSystem::open();
  VmFd vm = kvm.create_vm();
  vm.create_irqchip();
  EventFd first;
  EventFd second;
  EXPECT_NO_THROW(vm.register_irqfd(first.fd(), 5));
  EXPECT_NO_THROW(vm.register_irqfd(second.fd(), 6));
  try {
    vm.register_irqfd(first.fd(), 7);  // KVM refuses a second irqfd on the same eventfd
    ADD_FAILURE() << "registered one eventfd twice";
  } catch (const KvmError& e) {
    EXPECT_EQ(e.op(), "KVM_IRQFD");
    EXPECT_EQ(e.err(), EBUSY);
  }
  EXPECT_TRUE(first.signal());  // KVM consumes it and pulses GSI 5
}

}  // namespace
}  // namespace forkvm::test
