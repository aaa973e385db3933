// Where virtio-mmio devices live in the machine: slot i is the 4 KiB window at
// kVirtioMmioStart + i * 4 KiB with GSI kFirstVirtioIrq + i (layout.hpp). The guest learns of
// each device from a `virtio_mmio.device=` kernel parameter (Linux
// drivers/virtio/virtio_mmio.c, CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES), so the command line, which
// is written before KVM is opened, and the devices attached afterwards must agree: both come
// from planned_virtio_devices().
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace forkvm {

struct VmConfig;

/// The virtio device types a VmConfig can ask for.
enum class VirtioDeviceKind {
  kVsock,  ///< VmConfig::vsock
  kBlock,  ///< one of VmConfig::disks
  kNet,    ///< VmConfig::net
};

/// The virtio devices `config` asks for, in slot order (slot i holds element i): the vsock
/// device first (so its slot does not move when disks are added), then the disks in order, then
/// the net device (last, so that every configuration without one keeps the slots it had before
/// virtio-net existed, and snapshots taken then still restore).
std::vector<VirtioDeviceKind> planned_virtio_devices(const VmConfig& config);

/// One virtio-mmio slot: its MMIO window and its interrupt.
struct VirtioMmioSlot {
  uint64_t base = 0;  ///< guest-physical address of the register window
  uint64_t size = 0;  ///< window length (4 KiB)
  uint32_t gsi = 0;   ///< the GSI / IOAPIC pin (= ISA IRQ) of the device
};

/// Slot `index`. Throws ConfigError when index >= layout::kMaxVirtioDevices.
VirtioMmioSlot virtio_mmio_slot(size_t index);

/// The kernel parameter that declares `slot`: "virtio_mmio.device=4K@0xc0001000:5".
std::string virtio_mmio_cmdline_entry(const VirtioMmioSlot& slot);

/// The parameters for every planned device of `config`, space-separated ("" when none).
std::string virtio_mmio_cmdline(const VmConfig& config);

}  // namespace forkvm
