#include "vmm/virtio_mmio_slots.hpp"

#include <cstdio>

#include "forkvm/errors.hpp"
#include "forkvm/vm.hpp"
#include "memory/layout.hpp"
#include "vmm/arch/x86_64/mptable.hpp"

namespace forkvm {

// Every GSI handed out is an IOAPIC pin that the MP table routes (ISA IRQ n -> pin n for all
// kIoapicPins pins); without such an entry Linux cannot route IRQ 5 and up.
static_assert(layout::kLastVirtioIrq < x86::kIoapicPins);
static_assert(layout::kVirtioMmioSlotSize == 4 * layout::kKiB,
              "virtio_mmio_cmdline_entry() writes the slot size as 4K");

std::vector<VirtioDeviceKind> planned_virtio_devices(const VmConfig& config) {
  std::vector<VirtioDeviceKind> kinds;
  if (config.vsock) kinds.push_back(VirtioDeviceKind::kVsock);
  kinds.insert(kinds.end(), config.disks.size(), VirtioDeviceKind::kBlock);
  if (config.net) kinds.push_back(VirtioDeviceKind::kNet);
  return kinds;
}

VirtioMmioSlot virtio_mmio_slot(size_t index) {
  if (index >= layout::kMaxVirtioDevices) {
    throw ConfigError("at most " + std::to_string(layout::kMaxVirtioDevices) +
                      " virtio devices fit in a VM (one GSI each), asked for device " +
                      std::to_string(index + 1));
  }
  return {layout::kVirtioMmioStart + index * layout::kVirtioMmioSlotSize,
          layout::kVirtioMmioSlotSize, layout::kFirstVirtioIrq + static_cast<uint32_t>(index)};
}

std::string virtio_mmio_cmdline_entry(const VirtioMmioSlot& slot) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "virtio_mmio.device=4K@0x%llx:%u",
                static_cast<unsigned long long>(slot.base), slot.gsi);
  return buf;
}

std::string virtio_mmio_cmdline(const VmConfig& config) {
  const size_t count = planned_virtio_devices(config).size();
  std::string out;
  for (size_t i = 0; i < count; ++i) {
    if (!out.empty()) out += ' ';
    out += virtio_mmio_cmdline_entry(virtio_mmio_slot(i));
  }
  return out;
}

}  // namespace forkvm
