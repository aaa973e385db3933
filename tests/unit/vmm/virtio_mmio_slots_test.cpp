// Where virtio-mmio devices go (slots, GSIs, kernel parameters), the MP table routes for
// those GSIs, and the command line a VmConfig with a vsock device boots with.
#include "vmm/virtio_mmio_slots.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <set>

#include "forkvm/errors.hpp"
#include "forkvm/vm.hpp"
#include "memory/layout.hpp"
#include "vmm/arch/x86_64/mptable.hpp"
#include "tests/support/disk_of.hpp"

namespace forkvm {
namespace {

using test::disk_of;

TEST(VirtioMmioSlots, SlotsAndGsisFollowTheLayout) {
  const VirtioMmioSlot first = virtio_mmio_slot(0);
  EXPECT_EQ(first.base, 0xC0001000u);
  EXPECT_EQ(first.size, 0x1000u);
  EXPECT_EQ(first.gsi, 5u);
  const VirtioMmioSlot second = virtio_mmio_slot(1);
  EXPECT_EQ(second.base, 0xC0002000u);
  EXPECT_EQ(second.gsi, 6u);
  const VirtioMmioSlot last = virtio_mmio_slot(layout::kMaxVirtioDevices - 1);
  EXPECT_EQ(last.gsi, 23u);
  EXPECT_LT(last.base + last.size, layout::kIoapicStart);
  EXPECT_THROW(virtio_mmio_slot(layout::kMaxVirtioDevices), ConfigError);
}

TEST(VirtioMmioSlots, CmdlineEntry) {
  EXPECT_EQ(virtio_mmio_cmdline_entry(virtio_mmio_slot(0)),
            "virtio_mmio.device=4K@0xc0001000:5");
  EXPECT_EQ(virtio_mmio_cmdline_entry(virtio_mmio_slot(2)),
            "virtio_mmio.device=4K@0xc0003000:7");
}

/// The IOAPIC pins the MP table routes ISA IRQ n to, keyed by n (MPSpec 1.4 §4.3.4 entries).
std::set<std::pair<uint8_t, uint8_t>> routed_irqs(const std::vector<uint8_t>& t) {
  std::set<std::pair<uint8_t, uint8_t>> routes;
  uint16_t count = 0;
  std::memcpy(&count, t.data() + 16 + 34, sizeof count);
  size_t off = 16 + 44;
  for (uint16_t i = 0; i < count && off < t.size(); ++i) {
    const uint8_t type = t[off];
    if (type == x86::kMpIoInterrupt && t[off + 1] == x86::kMpIntInt) {
      routes.insert({t[off + 5], t[off + 7]});
    }
    off += type == x86::kMpProcessor ? 20 : 8;
  }
  return routes;
}

TEST(VirtioMmioSlots, MpTableRoutesEveryVirtioGsi) {
  for (uint32_t ncpus : {1u, 2u, 64u}) {
    const auto routes = routed_irqs(x86::build_mptable(ncpus, layout::kMpTableStart));
    for (uint32_t i = 0; i < layout::kMaxVirtioDevices; ++i) {
      const auto gsi = static_cast<uint8_t>(virtio_mmio_slot(i).gsi);
      EXPECT_TRUE(routes.count({gsi, gsi})) << "GSI " << int{gsi} << ", " << ncpus << " vCPUs";
    }
  }
}

TEST(VirtioMmioSlots, PlanFollowsTheConfig) {
  VmConfig c;
  EXPECT_TRUE(planned_virtio_devices(c).empty());
  EXPECT_EQ(virtio_mmio_cmdline(c), "");
  c.vsock = VsockConfig{3, "/tmp/v.sock"};
  EXPECT_EQ(planned_virtio_devices(c), std::vector<VirtioDeviceKind>{VirtioDeviceKind::kVsock});
  EXPECT_EQ(virtio_mmio_cmdline(c), "virtio_mmio.device=4K@0xc0001000:5");
}

TEST(VirtioMmioSlots, DisksFollowTheVsockDevice) {
  VmConfig c;
  c.disks = {disk_of("/a.img", false, ""), disk_of("/b.img", true, "b")};
  EXPECT_EQ(planned_virtio_devices(c),
            (std::vector<VirtioDeviceKind>{VirtioDeviceKind::kBlock, VirtioDeviceKind::kBlock}));
  c.vsock = VsockConfig{3, "/tmp/v.sock"};
  EXPECT_EQ(planned_virtio_devices(c),
            (std::vector<VirtioDeviceKind>{VirtioDeviceKind::kVsock, VirtioDeviceKind::kBlock,
                                           VirtioDeviceKind::kBlock}));
  EXPECT_EQ(virtio_mmio_cmdline(c),
            "virtio_mmio.device=4K@0xc0001000:5 virtio_mmio.device=4K@0xc0002000:6 "
            "virtio_mmio.device=4K@0xc0003000:7");
}

TEST(EffectiveCmdline, NoVirtioEntryWithoutDevices) {
  VmConfig c;
  EXPECT_EQ(effective_cmdline(c), default_cmdline());
  EXPECT_EQ(effective_cmdline(c).find("virtio_mmio"), std::string::npos);
}

TEST(EffectiveCmdline, DefaultZeroesFreedGuestPages) {
  // Secrets removed in the guest must not stay in free pages that snapshots and forks copy.
  EXPECT_NE((" " + default_cmdline() + " ").find(" init_on_free=1 "), std::string::npos);
  VmConfig c;
  EXPECT_NE((" " + effective_cmdline(c) + " ").find(" init_on_free=1 "), std::string::npos);
  // Left out on request (its boot-time cost: VmConfig::zero_freed_memory), the rest unchanged.
  c.zero_freed_memory = false;
  EXPECT_EQ(effective_cmdline(c).find("init_on_free"), std::string::npos) << effective_cmdline(c);
  EXPECT_EQ(effective_cmdline(c) + " init_on_free=1", default_cmdline());
}

VmConfig config_with_vsock(uint64_t cid, std::string path) {
  VmConfig c;
  c.kernel = "/nonexistent/forkvm-test-kernel";  // valid vsock settings reach this check
  c.vsock = VsockConfig{cid, std::move(path)};
  return c;
}

TEST(EffectiveCmdline, VsockAddsItsDeviceFirst) {
  VmConfig c = config_with_vsock(3, "/tmp/v.sock");
  EXPECT_EQ(effective_cmdline(c), "virtio_mmio.device=4K@0xc0001000:5 " + default_cmdline());
  // Before the caller's part, so a "--" there cannot pass it to init.
  c.cmdline = "console=ttyS0 -- init-arg";
  c.extra_cmdline = "quiet";
  EXPECT_EQ(effective_cmdline(c),
            "virtio_mmio.device=4K@0xc0001000:5 console=ttyS0 -- init-arg quiet");
}

TEST(ValidateVsock, AcceptsGoodSettings) {
  EXPECT_THROW(validate(config_with_vsock(3, "/tmp/v.sock")), ImageError);
  EXPECT_THROW(validate(config_with_vsock(0xfffffffeull, "v")), ImageError);
  EXPECT_THROW(validate(config_with_vsock(3, std::string(107, 'a'))), ImageError);
}

TEST(ValidateVsock, RejectsReservedCids) {
  for (uint64_t cid : {0ull, 1ull, 2ull, 0xffffffffull, 0x100000000ull, ~0ull}) {
    EXPECT_THROW(validate(config_with_vsock(cid, "/tmp/v.sock")), ConfigError) << cid;
  }
}

TEST(ValidateVsock, RejectsBadPaths) {
  EXPECT_THROW(validate(config_with_vsock(3, "")), ConfigError);
  EXPECT_THROW(validate(config_with_vsock(3, std::string(108, 'a'))), ConfigError);
}

TEST(ValidateDisks, ChecksCountPathsAndIds) {
  auto error_of = [](const VmConfig& c) -> std::string {
    try {
      validate(c);
    } catch (const ConfigError& e) {
      return e.what();
    } catch (const ImageError&) {
      return "";  // got past the disk checks to the (missing) kernel
    }
    return "accepted";
  };
  VmConfig c = config_with_vsock(3, "/tmp/v.sock");
  c.disks = {disk_of("/a.img", false, ""), disk_of("/b.img", true, "data-1")};
  EXPECT_EQ(error_of(c), "");
  c.disks[1].id = "disk0";  // the first disk's default id
  EXPECT_NE(error_of(c).find("used twice"), std::string::npos);
  c.disks[1].id = std::string(21, 'x');
  EXPECT_NE(error_of(c).find("longer than 20"), std::string::npos);
  c.disks[1].id = "with space";
  EXPECT_NE(error_of(c).find("printable ASCII"), std::string::npos);
  c.disks[1] = disk_of("", false, "");
  EXPECT_NE(error_of(c).find("path is empty"), std::string::npos);
  c.disks.assign(18, disk_of("/a.img", true, ""));
  for (size_t i = 0; i < c.disks.size(); ++i) c.disks[i].id = "d" + std::to_string(i);
  EXPECT_EQ(error_of(c), "");  // 18 disks + vsock = 19 slots, all there are
  c.disks.push_back(disk_of("/a.img", true, "d18"));
  EXPECT_NE(error_of(c).find("19 disks are too many: at most 18"), std::string::npos) << error_of(c);
}

TEST(VirtioMmioSlots, TheNetDeviceFollowsTheDisks) {
  VmConfig c;
  NetConfig net;
  net.tap = "tap0";
  c.net = net;
  EXPECT_EQ(planned_virtio_devices(c), std::vector<VirtioDeviceKind>{VirtioDeviceKind::kNet});
  c.vsock = VsockConfig{3, "/tmp/v.sock"};
  c.disks = {disk_of("/a.img", true, "")};
  // Slots of a machine without net are unchanged; net takes the next one.
  EXPECT_EQ(planned_virtio_devices(c),
            (std::vector<VirtioDeviceKind>{VirtioDeviceKind::kVsock, VirtioDeviceKind::kBlock,
                                           VirtioDeviceKind::kNet}));
  EXPECT_EQ(virtio_mmio_cmdline(c),
            "virtio_mmio.device=4K@0xc0001000:5 virtio_mmio.device=4K@0xc0002000:6 "
            "virtio_mmio.device=4K@0xc0003000:7");
}

TEST(ValidateNet, ExactlyOneBackendAndAUnicastMac) {
  auto error_of = [](const NetConfig& n, size_t disks = 0) -> std::string {
    VmConfig c = config_with_vsock(3, "/tmp/v.sock");
    c.net = n;
    for (size_t i = 0; i < disks; ++i) c.disks.push_back(disk_of("/a.img", true, "d" + std::to_string(i)));
    try {
      validate(c);
    } catch (const ConfigError& e) {
      return e.what();
    } catch (const ImageError&) {
      return "";  // got past the net checks to the (missing) kernel
    }
    return "accepted";
  };
  NetConfig tap;
  tap.tap = "tap0";
  EXPECT_EQ(error_of(tap), "");
  tap.netns = "/var/run/netns/sandbox";
  EXPECT_EQ(error_of(tap), "");
  NetConfig fd;
  fd.fd = 3;
  EXPECT_EQ(error_of(fd), "");
  fd.mac = {0x02, 1, 2, 3, 4, 5};
  EXPECT_EQ(error_of(fd), "");

  NetConfig both = tap;
  both.fd = 3;
  EXPECT_NE(error_of(both).find("not both"), std::string::npos) << error_of(both);
  EXPECT_NE(error_of(NetConfig{}).find("give a TAP name or a descriptor"), std::string::npos);
  NetConfig ns_with_fd = fd;
  ns_with_fd.netns = "/var/run/netns/x";
  EXPECT_NE(error_of(ns_with_fd).find("namespace"), std::string::npos) << error_of(ns_with_fd);
  NetConfig long_name;
  long_name.tap = std::string(16, 't');
  EXPECT_NE(error_of(long_name).find("1-15"), std::string::npos) << error_of(long_name);
  NetConfig multicast = fd;
  multicast.mac = {0x01, 0, 0x5e, 0, 0, 1};
  EXPECT_NE(error_of(multicast).find("multicast"), std::string::npos) << error_of(multicast);
  // With vsock and net, 17 disks fill the 19 slots.
  EXPECT_EQ(error_of(fd, 17), "");
  EXPECT_NE(error_of(fd, 18).find("18 disks are too many: at most 17 fit beside the vsock and net"),
            std::string::npos)
      << error_of(fd, 18);
}

}  // namespace
}  // namespace forkvm
