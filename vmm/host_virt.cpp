#include "vmm/host_virt.hpp"

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "forkvm/errors.hpp"

namespace forkvm {
namespace {

bool exists(const std::string& path) {
  std::error_code ec;
  return std::filesystem::exists(path, ec);
}

/// Whether any "flags" line of cpuinfo names vmx or svm as a whole word.
bool cpuinfo_has_hw_virt(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("flags", 0) != 0) continue;
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::istringstream words(line.substr(colon + 1));
    std::string w;
    while (words >> w) {
      if (w == "vmx" || w == "svm") return true;
    }
  }
  return false;
}

}  // namespace

HostVirt probe_host_virt(const std::string& root) {
  const std::string r = root.empty() || root.back() != '/' ? root + "/" : root;
  HostVirt v;
  v.hardware = cpuinfo_has_hw_virt(r + "proc/cpuinfo");
  v.pvm_module = exists(r + "sys/module/kvm_pvm");
  v.hardware_module = exists(r + "sys/module/kvm_intel") || exists(r + "sys/module/kvm_amd");
  return v;
}

void require_standard_kvm(const HostVirt& virt, const std::string& device, bool allow_pvm) {
  if (!virt.is_pvm() || allow_pvm) return;
  throw KvmError(
      "open " + device, EOPNOTSUPP,
      "this host's KVM is PVM (module kvm_pvm, no kvm_intel/kvm_amd" +
          std::string(virt.hardware ? "" : ", no VT-x/AMD-V in /proc/cpuinfo") +
          "): it accepts every ioctl but cannot boot a standard Linux guest. Use a host with "
          "Intel VT-x or AMD-V (bare metal, or a VM with nested virtualization), or run forkvm "
          "inside kvm-lab (tools/kvm-lab/kvm-lab -- forkvm ...). FORKVM_ALLOW_PVM=1 tries anyway");
}

std::string host_root_from_env() {
  const char* v = std::getenv("FORKVM_HOST_ROOT");
  return v != nullptr && *v != '\0' ? v : "/";
}

bool pvm_allowed_by_env() noexcept {
  const char* v = std::getenv("FORKVM_ALLOW_PVM");
  return v != nullptr && std::string(v) == "1";
}

}  // namespace forkvm
