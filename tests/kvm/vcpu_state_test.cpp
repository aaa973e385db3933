// kvm tier: vCPU state set/get round-trips through the RAII layer, and the vCPU thread's
// pause/resume/stop and guest-initiated stop on a real /dev/kvm.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <new>
#include <stdexcept>
#include <string>
#include <thread>

#include "tests/kvm/failing_allocations.hpp"
#include "tests/kvm/test_guest.hpp"
#include "vmm/arch/x86_64/lapic.hpp"
#include "vmm/vcpu_thread.hpp"

namespace forkvm::test {
namespace {

using namespace std::chrono_literals;

TEST(KvmVcpuState, RegsSregsFpuAndMsrsRoundTrip) {
  TestGuest g({0xF4});
  kvm_regs regs = g.vcpu.get_regs();
  regs.rax = 0x1111222233334444;
  regs.r15 = 0xfedcba9876543210;
  regs.rip = kCodeStart + 0x10;
  g.vcpu.set_regs(regs);
  const kvm_regs back = g.vcpu.get_regs();
  EXPECT_EQ(back.rax, regs.rax);
  EXPECT_EQ(back.r15, regs.r15);
  EXPECT_EQ(back.rip, regs.rip);

  kvm_sregs sregs = g.vcpu.get_sregs();
  EXPECT_EQ(sregs.cs.l, 1);  // the fixture put the vCPU in 64-bit mode
  sregs.cr8 = 5;
  g.vcpu.set_sregs(sregs);
  EXPECT_EQ(g.vcpu.get_sregs().cr8, 5u);

  kvm_fpu fpu = g.vcpu.get_fpu();
  fpu.fcw = 0x37e;
  g.vcpu.set_fpu(fpu);
  EXPECT_EQ(g.vcpu.get_fpu().fcw, 0x37e);

  std::vector<kvm_msr_entry> msrs(2);
  msrs[0].index = 0x174;  // IA32_SYSENTER_CS
  msrs[0].data = 0x10;
  msrs[1].index = 0xc0000082;  // IA32_LSTAR
  msrs[1].data = 0xffffffff81000000;
  g.vcpu.set_msrs(msrs);
  std::vector<kvm_msr_entry> read(2);
  read[0].index = 0x174;
  read[1].index = 0xc0000082;
  ASSERT_EQ(g.vcpu.get_msrs(read), 2u);
  EXPECT_EQ(read[0].data, 0x10u);
  EXPECT_EQ(read[1].data, 0xffffffff81000000u);
}

TEST(KvmVcpuState, LapicAndMpStateRoundTripWithIrqchip) {
  auto kvm = KvmSystem::open();
  auto vm = kvm.create_vm();
  vm.create_irqchip();
  auto vcpu = vm.create_vcpu(0);
  kvm_lapic_state lapic = x86::with_boot_lints(vcpu.get_lapic());
  vcpu.set_lapic(lapic);
  const kvm_lapic_state back = vcpu.get_lapic();
  EXPECT_EQ(std::memcmp(back.regs + 0x350, lapic.regs + 0x350, 4), 0);
  EXPECT_EQ(std::memcmp(back.regs + 0x360, lapic.regs + 0x360, 4), 0);
  kvm_mp_state mp{KVM_MP_STATE_RUNNABLE};
  vcpu.set_mp_state(mp);
  EXPECT_EQ(vcpu.get_mp_state().mp_state, static_cast<uint32_t>(KVM_MP_STATE_RUNNABLE));
  EXPECT_EQ(vcpu.get_tsc_khz() > 0, true);
}

// Regression: under C++ the uapi flexible-array structs have the wrong size (kvm_abi.hpp), which
// made these five ioctls fail with EINVAL.
TEST(KvmSystemCalls, FlexibleArrayIoctlsWork) {
  auto kvm = KvmSystem::open();
  const auto cpuid = kvm.supported_cpuid();
  ASSERT_GT(cpuid.size(), 5u);
  EXPECT_EQ(cpuid[0].function, 0u);
  EXPECT_GE(cpuid[0].eax, 1u);  // highest basic leaf
  const auto msrs = kvm.msr_index_list();
  EXPECT_NE(std::find(msrs.begin(), msrs.end(), 0x10u), msrs.end());  // IA32_TSC
  auto vm = kvm.create_vm();
  auto vcpu = vm.create_vcpu(0);
  vcpu.set_cpuid2(cpuid);
  std::vector<kvm_msr_entry> tsc(1);
  tsc[0].index = 0x10;
  EXPECT_EQ(vcpu.get_msrs(tsc), 1u);
}

// A vCPU's statistics descriptor that cannot be had for want of descriptors is an error, not
// a vCPU quietly without counters (such VMs held one descriptor fewer than their siblings).
TEST(KvmSystemCalls, StatsFdOutOfDescriptorsIsAKvmError) {
  auto kvm = KvmSystem::open();
  auto vm = kvm.create_vm();
  auto vcpu = vm.create_vcpu(0);
  ASSERT_TRUE(vcpu.open_stats().has_value()) << "kvm-lab's kernels (6.1+) have KVM_GET_STATS_FD";
  // Every descriptor number below the lowest free one is taken, so a limit of that number
  // leaves none.
  const int lowest_free = ::dup(0);
  ASSERT_GE(lowest_free, 0);
  ::close(lowest_free);
  rlimit saved{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &saved), 0);
  rlimit tight = saved;
  tight.rlim_cur = static_cast<rlim_t>(lowest_free);
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &tight), 0);
  int err = 0;
  bool got_stats = false;
  try {
    got_stats = vcpu.open_stats().has_value();
  } catch (const KvmError& e) {
    err = e.err();
  }
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &saved), 0);
  EXPECT_FALSE(got_stats);
  EXPECT_EQ(err, EMFILE);
}

TEST(KvmVcpuThread, PauseResumeAndStopASpinningGuest) {
  TestGuest g({0xEB, 0xFE});  // jmp $: never exits by itself
  std::atomic<int> stops{0};
  VcpuThread t(0, std::move(g.vcpu), g.pio, g.mmio,
               [&](uint32_t, ExitAction, const std::string&) { ++stops; });
  t.start(true);
  std::this_thread::sleep_for(50ms);
  const auto t0 = std::chrono::steady_clock::now();
  t.pause();  // must kick the thread out of KVM_RUN
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
  EXPECT_FALSE(t.finished());
  const uint64_t runs = t.run_count();
  std::this_thread::sleep_for(20ms);
  EXPECT_EQ(t.run_count(), runs);  // parked: no KVM_RUN while paused
  t.resume();
  std::this_thread::sleep_for(20ms);
  t.stop();
  EXPECT_TRUE(t.finished());
  EXPECT_EQ(stops.load(), 0);  // a host-requested stop is not a guest stop
}

/// Counts the OUTs written to it.
class CountingPort : public BusDevice {
 public:
  void read(uint64_t, std::span<uint8_t> data) override { std::fill(data.begin(), data.end(), 0); }
  void write(uint64_t, std::span<const uint8_t>) override { outs.fetch_add(1); }
  std::atomic<uint64_t> outs{0};
};

// A pause must never leave the vCPU parked on an I/O instruction that the device has already
// handled but KVM has not finished (RIP still on the OUT): a snapshot or freeze would capture
// it unfinished and every child would execute it again. The guest counts in RBX before each
// OUT, so when parked on the OUT the device must have seen exactly RBX - 1 of them, and
// anywhere else exactly RBX. Many pauses at arbitrary points of the loop.
TEST(KvmVcpuThread, APausedVcpuIsNeverParkedOnAHandledButUnfinishedOut) {
  // loop: inc rbx; out 0x80, al; jmp loop
  TestGuest g({0x48, 0xFF, 0xC3, 0xE6, 0x80, 0xEB, 0xF9});
  auto port = std::make_shared<CountingPort>();
  g.pio.insert(port, 0x80, 1);
  VcpuThread t(0, std::move(g.vcpu), g.pio, g.mmio, {});
  t.start(true);
  constexpr uint64_t kOutRip = kCodeStart + 3;
  int parked_on_out = 0;
  for (int i = 0; i < 1000; ++i) {
    if (i % 2 == 0) std::this_thread::sleep_for(std::chrono::microseconds(50 * (i % 7)));
    t.pause();
    const kvm_regs r = t.vcpu().get_regs();
    const uint64_t outs = port->outs.load();
    if (r.rip == kOutRip) {
      ++parked_on_out;
      ASSERT_EQ(outs, r.rbx - 1) << "pause " << i << ": parked on an OUT the device already handled";
    } else {
      ASSERT_EQ(outs, r.rbx) << "pause " << i << " at RIP 0x" << std::hex << r.rip;
    }
    t.resume();
  }
  t.stop();
  EXPECT_GT(port->outs.load(), 0u);
  RecordProperty("parked_on_out", parked_on_out);
}

/// Throws on every write, as a device with a bug or without memory would.
class ThrowingPort : public BusDevice {
 public:
  void read(uint64_t, std::span<uint8_t>) override {}
  void write(uint64_t, std::span<const uint8_t>) override { throw std::runtime_error("port on fire"); }
};

// A device that throws on the vCPU thread stops that vCPU with kDeviceError and the exception's
// text, instead of reaching std::terminate: this test binary lives on.
TEST(KvmVcpuThread, ADeviceThatThrowsStopsTheVcpuWithTheReason) {
  TestGuest g({0xE6, 0x80, 0xF4});  // out 0x80, al; hlt
  g.pio.insert(std::make_shared<ThrowingPort>(), 0x80, 1);
  std::atomic<int> stops{0};
  ExitAction seen = ExitAction::kContinue;
  std::string detail;
  VcpuThread t(0, std::move(g.vcpu), g.pio, g.mmio,
               [&](uint32_t, ExitAction a, const std::string& d) {
                 seen = a;
                 detail = d;
                 ++stops;
               });
  t.start(true);
  for (int i = 0; i < 500 && !t.finished(); ++i) std::this_thread::sleep_for(10ms);
  ASSERT_TRUE(t.finished());
  EXPECT_EQ(stops.load(), 1);
  EXPECT_EQ(seen, ExitAction::kDeviceError);
  EXPECT_NE(detail.find("port on fire"), std::string::npos) << detail;
  EXPECT_NE(detail.find("io out port 0x80"), std::string::npos) << detail;
  t.stop();
}

/// Fails out of memory, and leaves the vCPU thread out of memory: describing the failure
/// cannot allocate either (failing_allocations.hpp). The observer turns allocations back on.
class OutOfMemoryPort : public BusDevice {
 public:
  void read(uint64_t, std::span<uint8_t>) override {}
  void write(uint64_t, std::span<const uint8_t>) override {
    fail_allocations_on_this_thread(true);
    throw std::bad_alloc();
  }
};

// A device failure that leaves no memory to describe it still stops the vCPU and reports the
// stop (with an empty detail), so the VM records how it ended and its wait() returns; before,
// the report was dropped when building its text threw.
TEST(KvmVcpuThread, ADeviceOutOfMemoryStillReportsTheStop) {
  TestGuest g({0xE6, 0x80, 0xF4});  // out 0x80, al; hlt
  g.pio.insert(std::make_shared<OutOfMemoryPort>(), 0x80, 1);
  std::atomic<int> stops{0};
  std::atomic<ExitAction> seen{ExitAction::kContinue};
  std::atomic<bool> detail_empty{false};
  VcpuThread t(0, std::move(g.vcpu), g.pio, g.mmio,
               [&](uint32_t, ExitAction a, const std::string& d) {
                 fail_allocations_on_this_thread(false);
                 seen = a;
                 detail_empty = d.empty();
                 ++stops;
               });
  t.start(true);
  for (int i = 0; i < 500 && !t.finished(); ++i) std::this_thread::sleep_for(10ms);
  ASSERT_TRUE(t.finished());
  EXPECT_EQ(stops.load(), 1);
  EXPECT_EQ(seen.load(), ExitAction::kDeviceError);
  EXPECT_TRUE(detail_empty.load());
  t.stop();
}

/// Blocks the vCPU thread in its write until released: a device call that does not return.
class BlockingPort : public BusDevice {
 public:
  void read(uint64_t, std::span<uint8_t>) override {}
  void write(uint64_t, std::span<const uint8_t>) override {
    entered.store(true);
    while (!released.load()) std::this_thread::sleep_for(1ms);
  }
  std::atomic<bool> entered{false};
  std::atomic<bool> released{false};
};

// pause() has a deadline: a vCPU stuck in a device call makes it return false in time instead
// of hanging; once the call returns the vCPU parks, and stop() ends the thread.
TEST(KvmVcpuThread, PauseOfAVcpuStuckInADeviceTimesOut) {
  TestGuest g({0xE6, 0x80, 0xEB, 0xFE});  // out 0x80, al; jmp $
  auto port = std::make_shared<BlockingPort>();
  g.pio.insert(port, 0x80, 1);
  VcpuThread t(0, std::move(g.vcpu), g.pio, g.mmio, {});
  t.start(true);
  for (int i = 0; i < 1000 && !port->entered.load(); ++i) std::this_thread::sleep_for(5ms);
  ASSERT_TRUE(port->entered.load());
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_FALSE(t.pause(200ms));
  const auto waited = std::chrono::steady_clock::now() - t0;
  EXPECT_GE(waited, 200ms);
  EXPECT_LT(waited, 5s);
  port->released.store(true);
  EXPECT_TRUE(t.pause(5s));  // the call returned: it parks
  EXPECT_FALSE(t.finished());
  t.stop();
  EXPECT_TRUE(t.finished());
}

TEST(KvmVcpuThread, TripleFaultStopsTheThreadAndReportsIt) {
  TestGuest g({0xCC});  // int3 with an empty IDT: #NP -> #DF -> triple fault
  std::atomic<int> stops{0};
  ExitAction seen = ExitAction::kContinue;
  VcpuThread t(0, std::move(g.vcpu), g.pio, g.mmio,
               [&](uint32_t, ExitAction a, const std::string&) {
                 seen = a;
                 ++stops;
               });
  t.start(true);
  for (int i = 0; i < 500 && !t.finished(); ++i) std::this_thread::sleep_for(10ms);
  EXPECT_TRUE(t.finished());
  EXPECT_EQ(stops.load(), 1);
  EXPECT_EQ(seen, ExitAction::kGuestReset);
  t.stop();
}

}  // namespace
}  // namespace forkvm::test
