// probe_host_virt and require_standard_kvm over fake /proc and /sys trees: hardware KVM, PVM
// and no KVM are told apart, and a PVM host is refused with a KvmError naming the ways out
// unless FORKVM_ALLOW_PVM is set.
#include "vmm/host_virt.hpp"

#include <gtest/gtest.h>
#include <stdlib.h>

#include "forkvm/errors.hpp"
#include "tests/support/fake_host_root.hpp"

namespace forkvm {
namespace {

using test::FakeHostRoot;

TEST(HostVirt, HardwareAmdIsNotPvm) {
  FakeHostRoot root(test::kFlagsSvm, {"kvm_amd"});
  const HostVirt v = probe_host_virt(root.path());
  EXPECT_TRUE(v.hardware);
  EXPECT_TRUE(v.hardware_module);
  EXPECT_FALSE(v.pvm_module);
  EXPECT_FALSE(v.is_pvm());
  EXPECT_NO_THROW(require_standard_kvm(v, "/dev/kvm", false));
}

TEST(HostVirt, HardwareIntelIsNotPvm) {
  FakeHostRoot root(test::kFlagsVmx, {"kvm_intel"});
  const HostVirt v = probe_host_virt(root.path() + "/");  // a trailing slash is fine
  EXPECT_TRUE(v.hardware);
  EXPECT_FALSE(v.is_pvm());
}

TEST(HostVirt, PvmWithoutHardwareModuleIsPvm) {
  FakeHostRoot root(test::kFlagsNoVirt, {"kvm_pvm"});
  const HostVirt v = probe_host_virt(root.path());
  EXPECT_FALSE(v.hardware);
  EXPECT_TRUE(v.pvm_module);
  EXPECT_TRUE(v.is_pvm());
}

TEST(HostVirt, PvmBesideAHardwareModuleIsNotPvm) {
  // With kvm_amd loaded, /dev/kvm is the hardware module's.
  FakeHostRoot root(test::kFlagsSvm, {"kvm_pvm", "kvm_amd"});
  EXPECT_FALSE(probe_host_virt(root.path()).is_pvm());
}

TEST(HostVirt, NoKvmAtAll) {
  FakeHostRoot root(test::kFlagsNoVirt, {});
  const HostVirt v = probe_host_virt(root.path());
  EXPECT_FALSE(v.hardware);
  EXPECT_FALSE(v.pvm_module);
  EXPECT_FALSE(v.hardware_module);
  EXPECT_FALSE(v.is_pvm());
}

TEST(HostVirt, FlagLikeWordsAreNotFlags) {
  FakeHostRoot root("fpu svm_lock vmxnet lm", {});
  EXPECT_FALSE(probe_host_virt(root.path()).hardware);
}

TEST(HostVirt, MissingTreeMeansNothing) {
  const HostVirt v = probe_host_virt("/nonexistent/forkvm-root");
  EXPECT_FALSE(v.hardware || v.pvm_module || v.hardware_module);
}

TEST(HostVirt, PvmIsRefusedWithTheWaysOut) {
  FakeHostRoot root(test::kFlagsNoVirt, {"kvm_pvm"});
  const HostVirt v = probe_host_virt(root.path());
  try {
    require_standard_kvm(v, "/dev/kvm", false);
    FAIL() << "a PVM host was accepted";
  } catch (const KvmError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("/dev/kvm"), std::string::npos) << what;
    EXPECT_NE(what.find("PVM"), std::string::npos) << what;
    EXPECT_NE(what.find("VT-x or AMD-V"), std::string::npos) << what;
    EXPECT_NE(what.find("nested virtualization"), std::string::npos) << what;
    EXPECT_NE(what.find("tools/kvm-lab"), std::string::npos) << what;
    EXPECT_NE(what.find("FORKVM_ALLOW_PVM=1"), std::string::npos) << what;
  }
}

TEST(HostVirt, PvmIsAcceptedWhenAllowed) {
  FakeHostRoot root(test::kFlagsNoVirt, {"kvm_pvm"});
  EXPECT_NO_THROW(require_standard_kvm(probe_host_virt(root.path()), "/dev/kvm", true));
}

TEST(HostVirt, AllowPvmComesFromTheEnvironment) {
  ::unsetenv("FORKVM_ALLOW_PVM");
  EXPECT_FALSE(pvm_allowed_by_env());
  ::setenv("FORKVM_ALLOW_PVM", "0", 1);
  EXPECT_FALSE(pvm_allowed_by_env());
  ::setenv("FORKVM_ALLOW_PVM", "1", 1);
  EXPECT_TRUE(pvm_allowed_by_env());
  ::unsetenv("FORKVM_ALLOW_PVM");
}

}  // namespace
}  // namespace forkvm
