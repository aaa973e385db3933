// vmm/machine_components: the components object of state.json. encode -> decode -> encode is
// identical (what a fork or restore applies is what was captured), and a components object
// that does not fit the machine (missing, unknown or wrongly-kinded components, another vCPU
// count) is refused with a SnapshotError naming the component.
#include "vmm/machine_components.hpp"

#include <gtest/gtest.h>

#include <string>

#include "forkvm/errors.hpp"
#include "tests/unit/state/sample_state.hpp"

namespace forkvm {
namespace {

using nlohmann::json;

/// Components of a 2-vCPU machine with one vsock slot, every device away from its defaults.
MachineComponents sample_components() {
  MachineComponents c;
  c.machine = state::sample_machine();
  c.serial.ier = 0x05;
  c.serial.lcr = 0x03;
  c.serial.scr = 0x5a;
  c.i8042.ram[0] = 0x47;
  c.i8042.output_port = 0x01;
  c.boot_signal.agent_ready.count = 1;
  MachineComponents::Slot slot;
  slot.kind = VirtioDeviceKind::kVsock;
  slot.transport.device_id = 19;  // virtio-vsock
  slot.transport.status = 0xf;
  slot.transport.activated = true;
  slot.transport.driver_features = 1ull << 32;
  slot.transport.queues.resize(3);
  for (size_t q = 0; q < 3; ++q) {
    slot.transport.queues[q].enabled = true;
    auto& queue = slot.transport.queues[q].queue;
    queue.size = 128;
    queue.desc_table = 0x100000 + q * 0x10000;
    queue.avail_ring = queue.desc_table + 0x800;
    queue.used_ring = queue.desc_table + 0x1000;
    queue.ready = true;
    queue.next_avail = static_cast<uint16_t>(5 + q);
    queue.next_used = static_cast<uint16_t>(5 + q);
  }
  slot.vsock.guest_cid = 42;
  slot.vsock.next_local_port = (1u << 30) + 7;
  slot.vsock.reset_pending = true;
  slot.vsock.reset_event_avail = 9;
  slot.vsock.reset_events = 2;
  c.slots.push_back(slot);
  return c;
}

const std::vector<VirtioDeviceKind> kVsockOnly = {VirtioDeviceKind::kVsock};

std::string decode_error(const json& j, uint32_t vcpus = 2,
                         const std::vector<VirtioDeviceKind>& kinds = kVsockOnly) {
  try {
    decode_components(j, vcpus, kinds);
  } catch (const SnapshotError& e) {
    return e.what();
  }
  return "";
}

TEST(MachineComponents, EncodeDecodeEncodeIsIdentical) {
  const json first = encode_components(sample_components());
  const MachineComponents decoded = decode_components(first, 2, kVsockOnly);
  EXPECT_EQ(encode_components(decoded), first);
  // And through text, as state.json carries it.
  const MachineComponents reparsed = decode_components(json::parse(first.dump()), 2, kVsockOnly);
  EXPECT_EQ(encode_components(reparsed), first);
  EXPECT_EQ(decoded.slots.at(0).vsock.guest_cid, 42u);
  EXPECT_EQ(decoded.machine.vcpus.size(), 2u);
}

TEST(MachineComponents, RefusesWhatDoesNotFitTheMachine) {
  const json good = encode_components(sample_components());

  json missing = good;
  missing.erase("i8042");
  EXPECT_NE(decode_error(missing).find("'i8042' is missing"), std::string::npos);

  json unknown = good;
  unknown["virtio.1"] = good["virtio.0"];
  EXPECT_NE(decode_error(unknown).find("unknown component 'virtio.1'"), std::string::npos);

  // A machine without the vsock slot does not take a snapshot that has one.
  EXPECT_NE(decode_error(good, 2, {}).find("unknown component 'virtio.0'"), std::string::npos);

  json wrong_kind = good;
  wrong_kind["virtio.0"]["kind"] = "blk";
  EXPECT_NE(decode_error(wrong_kind).find("'blk'"), std::string::npos);

  EXPECT_NE(decode_error(good, 1).find("vcpu"), std::string::npos) << decode_error(good, 1);
  EXPECT_NE(decode_error(good, 3).find("vCPUs"), std::string::npos) << decode_error(good, 3);

  json bad_cid = good;
  bad_cid["virtio.0"]["device"]["guest_cid"] = 2;
  EXPECT_NE(decode_error(bad_cid).find("guest_cid"), std::string::npos) << decode_error(bad_cid);

  EXPECT_NE(decode_error(json::array()).find("not an object"), std::string::npos);
}

/// sample_components() plus a net slot after the vsock one (slot order: vsock, disks, net).
MachineComponents with_net_slot() {
  MachineComponents c = sample_components();
  MachineComponents::Slot slot;
  slot.kind = VirtioDeviceKind::kNet;
  slot.transport.device_id = 1;  // virtio-net
  slot.transport.status = 0xf;
  slot.transport.activated = true;
  slot.transport.driver_features = (1ull << 32) | (1ull << 5) | (1ull << 16);
  slot.transport.queues.resize(2);
  for (size_t q = 0; q < 2; ++q) {
    slot.transport.queues[q].enabled = true;
    auto& queue = slot.transport.queues[q].queue;
    queue.size = 256;
    queue.desc_table = 0x200000 + q * 0x10000;
    queue.avail_ring = queue.desc_table + 0x1000;
    queue.used_ring = queue.desc_table + 0x2000;
    queue.ready = true;
    queue.next_avail = static_cast<uint16_t>(300 + q);
    queue.next_used = static_cast<uint16_t>(300 + q);
  }
  slot.net.mac = {0x02, 0x12, 0x34, 0x56, 0x78, 0x9a};
  c.slots.push_back(slot);
  return c;
}

const std::vector<VirtioDeviceKind> kVsockAndNet = {VirtioDeviceKind::kVsock, VirtioDeviceKind::kNet};

TEST(MachineComponents, ANetSlotRoundTrips) {
  const json first = encode_components(with_net_slot());
  EXPECT_EQ(first["virtio.1"]["kind"], "net");
  EXPECT_EQ(first["virtio.1"]["device"]["mac"], "02:12:34:56:78:9a");
  const MachineComponents decoded = decode_components(json::parse(first.dump()), 2, kVsockAndNet);
  EXPECT_EQ(encode_components(decoded), first);
  EXPECT_EQ(decoded.slots.at(1).net.mac, (NetDevice::Mac{0x02, 0x12, 0x34, 0x56, 0x78, 0x9a}));
  EXPECT_EQ(decoded.slots.at(1).transport.queues.size(), 2u);

  // A machine without the net slot refuses it, and a net slot is not a disk.
  EXPECT_NE(decode_error(first).find("unknown component 'virtio.1'"), std::string::npos);
  EXPECT_NE(decode_error(first, 2, {VirtioDeviceKind::kVsock, VirtioDeviceKind::kBlock}).find("'net'"),
            std::string::npos);
  json multicast = first;
  multicast["virtio.1"]["device"]["mac"] = "03:00:00:00:00:01";
  EXPECT_NE(decode_error(multicast, 2, kVsockAndNet).find("net.mac"), std::string::npos)
      << decode_error(multicast, 2, kVsockAndNet);
  json extra = first;
  extra["virtio.1"]["device"]["tap"] = "tap0";
  EXPECT_NE(decode_error(extra, 2, kVsockAndNet).find("tap"), std::string::npos);
}

}  // namespace
}  // namespace forkvm
