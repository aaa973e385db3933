#include "bench/raw_fork_reference.hpp"

#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <vector>

#include "memory/layout.hpp"
#include "snapshot/snapshot.hpp"
#include "vmm/kvm/kvm_system.hpp"
#include "vmm/kvm/vcpu_fd.hpp"
#include "vmm/kvm/vm_fd.hpp"
#include "vmm/state/kvm_state_codec.hpp"

namespace forkvm::bench {
namespace {

using Clock = std::chrono::steady_clock;

struct StepInfo {
  const char* name;
  const char* key;
};

constexpr std::array<StepInfo, kRawStepCount> kSteps = {{
    {"open /dev/kvm", "open_kvm"},
    {"KVM_CREATE_VM", "create_vm"},
    {"KVM_CREATE_IRQCHIP", "create_irqchip"},
    {"KVM_CREATE_PIT2", "create_pit2"},
    {"mmap MAP_PRIVATE", "mmap"},
    {"KVM_SET_USER_MEMORY_REGION", "set_user_memory_region"},
    {"KVM_CREATE_VCPU", "create_vcpu"},
    {"KVM_SET_CPUID2", "set_cpuid2"},
    {"KVM_SET_SREGS", "set_sregs"},
    {"KVM_SET_REGS", "set_regs"},
    {"KVM_SET_XSAVE", "set_xsave"},
    {"KVM_SET_LAPIC", "set_lapic"},
    {"KVM_SET_MSRS", "set_msrs"},
    {"KVM_SET_MP_STATE", "set_mp_state"},
}};

double ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

/// One guest RAM region: where it sits in the guest and in the memory file (GuestMemory's
/// layout: [0, min(size, 3 GiB)), the rest from 4 GiB, back to back in the file).
struct RegionLayout {
  uint64_t gpa, size, file_offset;
};

std::vector<RegionLayout> region_layout(uint64_t size) {
  const uint64_t low = std::min(size, layout::kMmioHoleStart);
  std::vector<RegionLayout> r = {{0, low, 0}};
  if (size > low) r.push_back({layout::kMmioHoleEnd, size - low, low});
  return r;
}

}  // namespace

const char* raw_step_name(RawStep step) { return kSteps[static_cast<size_t>(step)].name; }
const char* raw_step_key(RawStep step) { return kSteps[static_cast<size_t>(step)].key; }

bool raw_step_needs_image(RawStep step) {
  switch (step) {
    case RawStep::kMmap:
    case RawStep::kSetCpuid2:
    case RawStep::kSetSregs:
    case RawStep::kSetRegs:
    case RawStep::kSetXsave:
    case RawStep::kSetLapic:
    case RawStep::kSetMsrs:
    case RawStep::kSetMpState:
      return true;
    case RawStep::kOpenKvm:
    case RawStep::kCreateVm:
    case RawStep::kCreateIrqchip:
    case RawStep::kCreatePit2:
    case RawStep::kSetMemoryRegion:
    case RawStep::kCreateVcpu:
      return false;
  }
  return true;
}

std::string raw_step_order() {
  std::string s;
  for (const auto& st : kSteps) s += (s.empty() ? "" : ", ") + std::string(st.name);
  return s;
}

struct RawForkReference::Files {
  snapshot::SnapshotFiles files;
};

class RawForkReference::Child {
 public:
  ~Child() {
    vcpus.clear();  // vCPU fds (and their kvm_run mappings) before the VM they belong to
    for (const auto& [addr, len] : mappings) ::munmap(addr, len);
    vm.reset();
    kvm.reset();
  }
  std::optional<KvmSystem> kvm;
  std::optional<VmFd> vm;
  std::vector<std::pair<void*, size_t>> mappings;
  std::vector<VcpuFd> vcpus;
};

void RawForkReference::ChildDeleter::operator()(Child* c) const noexcept { delete c; }

RawForkReference::RawForkReference(const std::string& dir) : files_(std::make_unique<Files>()) {
  snapshot::OpenOptions o;
  o.verify_memory = false;
  files_->files = snapshot::open_snapshot(dir, o);
  const snapshot::State& st = files_->files.state;
  const auto it = st.components.find("machine");
  if (it == st.components.end()) {
    throw std::runtime_error("snapshot " + dir + ": state.json has no 'machine' component");
  }
  machine_ = state::machine_state_from_json(*it, st.machine.vcpus);
  memory_bytes_ = st.machine.memory_bytes();
}

RawForkReference::~RawForkReference() = default;

RawForkReference::ChildPtr RawForkReference::fork(RawForkTimings* t) const {
  *t = RawForkTimings{};
  ChildPtr child(new Child());
  const auto start = Clock::now();
  auto mark = start;
  auto step_done = [&](RawStep step) {
    const auto now = Clock::now();
    t->step_ms[static_cast<size_t>(step)] += ms(now - mark);
    mark = now;
  };

  child->kvm.emplace(KvmSystem::open("/dev/kvm"));
  step_done(RawStep::kOpenKvm);
  child->vm.emplace(child->kvm->create_vm());
  step_done(RawStep::kCreateVm);
  child->vm->create_irqchip();  // naive: before the memory slot
  step_done(RawStep::kCreateIrqchip);
  child->vm->create_pit2();
  step_done(RawStep::kCreatePit2);

  const auto regions = region_layout(memory_bytes_);
  const int memory_fd = files_->files.memory_fd.get();
  for (const auto& r : regions) {
    void* p = ::mmap(nullptr, r.size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_NORESERVE,
                     memory_fd, static_cast<off_t>(r.file_offset));
    if (p == MAP_FAILED) {
      throw std::runtime_error(std::string("mmap of the snapshot's memory file: ") +
                               std::strerror(errno));
    }
    child->mappings.emplace_back(p, r.size);
  }
  step_done(RawStep::kMmap);
  for (size_t i = 0; i < regions.size(); ++i) {
    child->vm->set_user_memory_region(static_cast<uint32_t>(i), regions[i].gpa, regions[i].size,
                                      child->mappings[i].first);
  }
  step_done(RawStep::kSetMemoryRegion);

  child->vcpus.reserve(machine_.vcpus.size());
  for (uint32_t i = 0; i < machine_.vcpus.size(); ++i) child->vcpus.push_back(child->vm->create_vcpu(i));
  step_done(RawStep::kCreateVcpu);

  for (size_t i = 0; i < machine_.vcpus.size(); ++i) {
    const state::VcpuState& s = machine_.vcpus[i];
    const VcpuFd& v = child->vcpus[i];
    v.set_cpuid2(s.cpuid);
    step_done(RawStep::kSetCpuid2);
    v.set_sregs(s.sregs);
    step_done(RawStep::kSetSregs);
    v.set_regs(s.regs);
    step_done(RawStep::kSetRegs);
    // The kernel reads its own XSAVE size (KVM_CHECK_EXTENSION(KVM_CAP_XSAVE2) on this VM),
    // part of the step.
    v.set_xsave(s.xsave, child->vm->xsave2_size());
    step_done(RawStep::kSetXsave);
    v.set_lapic(s.lapic);
    step_done(RawStep::kSetLapic);
    v.set_msrs(s.msrs);
    step_done(RawStep::kSetMsrs);
    v.set_mp_state(s.mp_state);
    step_done(RawStep::kSetMpState);
  }
  t->total_ms = ms(Clock::now() - start);
  return child;
}

double RawForkReference::teardown(ChildPtr child) {
  const auto t0 = Clock::now();
  child.reset();
  return ms(Clock::now() - t0);
}

}  // namespace forkvm::bench
