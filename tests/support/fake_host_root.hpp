// FakeHostRoot: a throw-away tree with proc/cpuinfo and sys/module/<name> directories, for the
// tests of how forkvm and run-tier classify a host (hardware KVM, PVM, none) without one.
#pragma once

#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <system_error>

#include "tests/support/temp_dir.hpp"

namespace forkvm::test {

class FakeHostRoot {
 public:
  /// `cpu_flags` goes into each of two processors' "flags" lines; `modules` become
  /// sys/module/<name>/ directories.
  FakeHostRoot(const std::string& cpu_flags, std::initializer_list<const char*> modules) {
    const std::filesystem::path& path_ = dir_.path();
    std::filesystem::create_directories(path_ / "proc");
    std::filesystem::create_directories(path_ / "sys/module/kvm");
    for (const char* m : modules) std::filesystem::create_directories(path_ / "sys/module" / m);
    std::ofstream cpuinfo(path_ / "proc/cpuinfo");
    for (int cpu = 0; cpu < 2; ++cpu) {
      cpuinfo << "processor\t: " << cpu << "\nvendor_id\t: AuthenticAMD\nmodel name\t: fake\n"
              << "flags\t\t: " << cpu_flags << "\nbugs\t\t: sysret_ss_attrs\n\n";
    }
    if (!cpuinfo) throw std::runtime_error("cannot write the fake cpuinfo");
  }
  std::string path() const { return dir_.path().string(); }

 private:
  TempDir dir_{"forkvm-fakeroot"};
};

/// Flags of a CPU without VT-x/AMD-V (as on the project's PVM and no-KVM machines).
inline constexpr const char* kFlagsNoVirt = "fpu vme de pse tsc msr pae sse sse2 ht syscall nx lm hypervisor";
/// The same with AMD-V.
inline constexpr const char* kFlagsSvm = "fpu vme de pse tsc msr pae sse sse2 ht syscall nx lm svm npt";
/// The same with VT-x.
inline constexpr const char* kFlagsVmx = "fpu vme de pse tsc msr pae sse sse2 vmx ht syscall nx lm ept";

}  // namespace forkvm::test
