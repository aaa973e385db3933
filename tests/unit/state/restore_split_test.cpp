// Where VcpuState's and MachineState's restore splits fall (vcpu_state.hpp, "Restore comes in
// two halves"): what decides whether the LAPIC, paravirtual MSRs, events and the IOAPIC may be
// restored ahead of the live half.
#include <gtest/gtest.h>

#include <cstring>

#include "vmm/state/machine_state.hpp"
#include "vmm/state/msr_list.hpp"

namespace forkvm::state {
namespace {

void put(kvm_lapic_state& s, uint32_t off, uint32_t v) { std::memcpy(s.regs + off, &v, 4); }

constexpr uint32_t kLvtTimer = 0x320;     // SDM Vol. 3A Table 10-1
constexpr uint32_t kInitialCount = 0x380;

/// A vCPU whose LVT timer is in `mode` (0 one-shot, 1 periodic, 2 TSC-deadline) with initial
/// count `tmict`, and whose CPUID offers the TSC-deadline mode when `deadline_cpuid`.
VcpuState vcpu(uint32_t mode, uint32_t tmict, bool deadline_cpuid) {
  VcpuState s;
  put(s.lapic, kLvtTimer, (mode << 17) | 0xec);
  put(s.lapic, kInitialCount, tmict);
  kvm_cpuid_entry2 leaf{};
  leaf.function = 1;
  leaf.ecx = deadline_cpuid ? (1u << 24) : 0;
  s.cpuid = {leaf};
  return s;
}

TEST(RestoreSplit, ALapicTimerOnHostTimeKeepsTheLapicLive) {
  EXPECT_FALSE(vcpu(0, 1000, true).lapic_ahead());   // one-shot, counting
  EXPECT_FALSE(vcpu(1, 1000, true).lapic_ahead());   // periodic, counting
  // The deadline mode without the CPUID bit: KVM runs the timer one-shot on TMICT.
  EXPECT_FALSE(vcpu(2, 1000, false).lapic_ahead());
  EXPECT_FALSE(vcpu(3, 1000, true).lapic_ahead());   // reserved mode: taken as counting
}

TEST(RestoreSplit, AStoppedOrDeadlineTimerLetsTheLapicGoAhead) {
  EXPECT_TRUE(vcpu(0, 0, false).lapic_ahead());      // one-shot, stopped
  EXPECT_TRUE(vcpu(1, 0, true).lapic_ahead());       // periodic, stopped
  EXPECT_TRUE(vcpu(2, 1000, true).lapic_ahead());    // deadline mode ignores TMICT
  EXPECT_TRUE(vcpu(2, 0, false).lapic_ahead());
  VcpuState no_cpuid = vcpu(2, 1000, true);
  no_cpuid.cpuid.clear();
  EXPECT_FALSE(no_cpuid.lapic_ahead());
}

TEST(RestoreSplit, TheTscMsrsAreAlwaysLiveAndThePvOnesFollowTheLapic) {
  for (bool ahead : {false, true}) {
    EXPECT_TRUE(restored_live(msr::kTsc, ahead));
    EXPECT_TRUE(restored_live(msr::kTscAdjust, ahead));
    EXPECT_TRUE(restored_live(msr::kTscDeadline, ahead));
    EXPECT_FALSE(restored_live(0xc0000082, ahead));  // LSTAR
    EXPECT_FALSE(restored_live(0x277, ahead));       // PAT
  }
  for (uint32_t pv : {msr::kKvmWallClockOld, msr::kKvmSystemTimeOld, msr::kKvmPvFirst,
                      msr::kKvmAsyncPfEn, msr::kKvmAsyncPfInt}) {
    EXPECT_TRUE(restored_live(pv, false)) << std::hex << pv;
    EXPECT_FALSE(restored_live(pv, true)) << std::hex << pv;
  }
}

TEST(RestoreSplit, TheIoapicGoesAheadOnlyWhenEveryLapicDoes) {
  MachineState m;
  m.vcpus = {vcpu(2, 0, true), vcpu(0, 0, true)};
  EXPECT_TRUE(m.irqchip_ahead());
  m.vcpus.push_back(vcpu(1, 5, true));
  EXPECT_FALSE(m.irqchip_ahead());
}

}  // namespace
}  // namespace forkvm::state
