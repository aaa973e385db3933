// run-tier's decision (`run-tier --decide TIER`) over fake /proc and /sys trees: both the kvm
// and the e2e tier run directly only on hardware KVM (VMX/SVM, a usable device that is not
// PVM's), and through kvm-lab on a PVM host or one without /dev/kvm; the line says why. The
// device is /dev/null (a character device that opens read-write) or a path that does not exist.
#include <gtest/gtest.h>

#include <string>

#include "tests/support/fake_host_root.hpp"
#include "tests/support/run_process.hpp"

namespace forkvm {
namespace {

using test::FakeHostRoot;

struct Decision {
  std::string mode;  ///< "direct" or "kvm-lab"
  std::string line;  ///< everything run-tier printed
};

Decision decide(const std::string& tier, const FakeHostRoot& root, const std::string& device,
                const std::string& extra_env = "") {
  const auto r = test::run_process("env -u FORKVM_LAB -u FORKVM_IN_KVM_LAB FORKVM_HOST_ROOT='" +
                                   root.path() + "' FORKVM_KVM_DEVICE='" + device + "' " +
                                   extra_env + " '" FORKVM_TEST_RUN_TIER "' --decide " + tier);
  EXPECT_EQ(r.status, 0) << r.output;
  Decision d;
  d.line = r.output;
  if (r.output.find("\ndirect") != std::string::npos || r.output.rfind("direct", 0) == 0) {
    d.mode = "direct";
  } else if (r.output.find("\nkvm-lab") != std::string::npos || r.output.rfind("kvm-lab", 0) == 0) {
    d.mode = "kvm-lab";
  }
  return d;
}

constexpr const char* kUsable = "/dev/null";
constexpr const char* kMissing = "/nonexistent/forkvm-kvm";

TEST(RunTier, HardwareKvmRunsBothTiersDirectly) {
  FakeHostRoot amd(test::kFlagsSvm, {"kvm_amd"});
  FakeHostRoot intel(test::kFlagsVmx, {"kvm_intel"});
  for (const char* tier : {"kvm", "e2e"}) {
    for (const FakeHostRoot* root : {&amd, &intel}) {
      const Decision d = decide(tier, *root, kUsable);
      EXPECT_EQ(d.mode, "direct") << d.line;
      EXPECT_NE(d.line.find("VMX/SVM and a usable"), std::string::npos) << d.line;
    }
  }
}

TEST(RunTier, PvmRunsBothTiersInKvmLab) {
  FakeHostRoot pvm(test::kFlagsNoVirt, {"kvm_pvm"});
  for (const char* tier : {"kvm", "e2e"}) {
    const Decision d = decide(tier, pvm, kUsable);
    EXPECT_EQ(d.mode, "kvm-lab") << d.line;
    EXPECT_NE(d.line.find("is PVM"), std::string::npos) << d.line;
    EXPECT_NE(d.line.find(std::string("[run-tier] ") + tier + ": via kvm-lab"), std::string::npos)
        << d.line;
  }
}

TEST(RunTier, PvmIsTheSameUnderCi) {
  FakeHostRoot pvm(test::kFlagsNoVirt, {"kvm_pvm"});
  EXPECT_EQ(decide("kvm", pvm, kUsable, "CI=true").mode, "kvm-lab");
}

TEST(RunTier, NoKvmRunsBothTiersInKvmLab) {
  // kvm_pvm built in but not bound: no /dev/kvm (seen on the project's machines).
  FakeHostRoot none(test::kFlagsNoVirt, {"kvm_pvm"});
  for (const char* tier : {"kvm", "e2e"}) {
    const Decision d = decide(tier, none, kMissing);
    EXPECT_EQ(d.mode, "kvm-lab") << d.line;
    EXPECT_NE(d.line.find("no VMX/SVM and no usable"), std::string::npos) << d.line;
  }
}

TEST(RunTier, HardwareWithoutADeviceGoesToKvmLab) {
  FakeHostRoot root(test::kFlagsSvm, {});
  const Decision d = decide("kvm", root, kMissing);
  EXPECT_EQ(d.mode, "kvm-lab") << d.line;
  EXPECT_NE(d.line.find("VMX/SVM but no usable"), std::string::npos) << d.line;
}

TEST(RunTier, ADeviceWithoutHardwareIsNotUsedDirectly) {
  FakeHostRoot root(test::kFlagsNoVirt, {});
  const Decision d = decide("kvm", root, kUsable);
  EXPECT_EQ(d.mode, "kvm-lab") << d.line;
  EXPECT_NE(d.line.find("not hardware KVM"), std::string::npos) << d.line;
}

TEST(RunTier, PvmBesideAHardwareModuleRunsDirectly) {
  FakeHostRoot root(test::kFlagsSvm, {"kvm_pvm", "kvm_amd"});
  EXPECT_EQ(decide("e2e", root, kUsable).mode, "direct");
}

TEST(RunTier, OverridesWin) {
  FakeHostRoot pvm(test::kFlagsNoVirt, {"kvm_pvm"});
  FakeHostRoot hw(test::kFlagsSvm, {"kvm_amd"});
  EXPECT_EQ(decide("kvm", pvm, kUsable, "FORKVM_LAB=never").mode, "direct");
  EXPECT_EQ(decide("kvm", hw, kUsable, "FORKVM_LAB=always").mode, "kvm-lab");
  EXPECT_EQ(decide("e2e", pvm, kMissing, "FORKVM_IN_KVM_LAB=1").mode, "direct");
}

TEST(RunTier, BadArgumentsAreUsageErrors) {
  FakeHostRoot hw(test::kFlagsSvm, {"kvm_amd"});
  EXPECT_EQ(test::run_process("'" FORKVM_TEST_RUN_TIER "' --decide").status, 2);
  EXPECT_EQ(test::run_process("'" FORKVM_TEST_RUN_TIER "' --decide nope").status, 2);
  EXPECT_EQ(test::run_process("'" FORKVM_TEST_RUN_TIER "' kvm").status, 2);
  EXPECT_EQ(test::run_process("FORKVM_LAB=sometimes '" FORKVM_TEST_RUN_TIER "' --decide kvm").status, 2);
}

}  // namespace
}  // namespace forkvm
