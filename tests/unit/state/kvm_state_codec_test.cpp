// vmm/state JSON: save -> load -> save is identical, and hostile JSON is rejected with a
// SnapshotError that names the field.
#include "vmm/state/kvm_state_codec.hpp"

#include <gtest/gtest.h>

#include <functional>
#include <string>

#include "base/base64.hpp"
#include "forkvm/errors.hpp"
#include "tests/unit/state/sample_state.hpp"

namespace forkvm::state {
namespace {

using nlohmann::json;


TEST(StateJson, SaveLoadSaveIsIdentical) {
  const MachineState m = sample_machine();
  const json first = to_json(m);
  // Through text too: that is how it reaches the file.
  const MachineState loaded = machine_state_from_json(json::parse(first.dump()));
  EXPECT_TRUE(loaded.vcpus[0] == m.vcpus[0]);
  EXPECT_TRUE(loaded.vcpus[1] == m.vcpus[1]);
  EXPECT_FALSE(loaded.vcpus[0] == m.vcpus[1]);
  EXPECT_TRUE(loaded.vm == m.vm);
  EXPECT_EQ(to_json(loaded).dump(), first.dump());
  EXPECT_EQ(loaded.vcpus[0].regs.r15, UINT64_MAX);
  EXPECT_EQ(loaded.vm.pit.channels[0].count_load_time, -5);
}

TEST(StateJson, LargerXsaveAreasRoundTrip) {
  VcpuState v = sample_vcpu(3);
  v.xsave.resize(11008, 0x5a);  // an AMX-sized KVM_CAP_XSAVE2 area
  const VcpuState back = vcpu_state_from_json(to_json(v), "vcpu[0]");
  EXPECT_EQ(back.xsave.size(), 11008u);
  EXPECT_TRUE(back == v);
}

/// Applies `mutate` to a valid machine's JSON and expects SnapshotError mentioning `needle`.
void expect_rejected(const std::function<void(json&)>& mutate, const std::string& needle) {
  json j = to_json(sample_machine());
  mutate(j);
  try {
    machine_state_from_json(j);
    ADD_FAILURE() << "accepted; expected an error mentioning " << needle;
  } catch (const SnapshotError& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos)
        << "message: " << e.what() << "\nexpected to contain: " << needle;
  }
}

TEST(StateJson, RejectsMissingWrongTypedAndUnknownFields) {
  expect_rejected([](json& j) { j["vcpus"][0]["regs"].erase("rip"); }, "vcpu[0].regs.rip: missing");
  expect_rejected([](json& j) { j["vcpus"][1]["regs"]["rax"] = "1"; }, "vcpu[1].regs.rax: expected");
  expect_rejected([](json& j) { j["vcpus"][0]["regs"]["rax"] = 1.5; }, "vcpu[0].regs.rax");
  expect_rejected([](json& j) { j["vcpus"][0]["regs"]["rax"] = -1; }, "vcpu[0].regs.rax");
  expect_rejected([](json& j) { j["vcpus"][0]["regs"]["rax"] = nullptr; }, "vcpu[0].regs.rax");
  expect_rejected([](json& j) { j["vcpus"][0]["regs"]["evil"] = 1; }, "vcpu[0].regs.evil: unknown");
  expect_rejected([](json& j) { j["vcpus"][0]["sregs"] = json::array(); }, "vcpu[0].sregs: expected an object");
  expect_rejected([](json& j) { j.erase("vm"); }, "machine.vm: missing");
  expect_rejected([](json& j) { j["vcpus"] = json::array(); }, "machine.vcpus: no vCPUs");
  expect_rejected([](json& j) { j = json::array(); }, "machine: expected an object");
}

TEST(StateJson, RejectsOutOfRangeValues) {
  expect_rejected([](json& j) { j["vcpus"][0]["sregs"]["cs"]["dpl"] = 7; }, "vcpu[0].sregs.cs.dpl");
  expect_rejected([](json& j) { j["vcpus"][0]["sregs"]["ss"]["type"] = 16; }, "sregs.ss.type");
  expect_rejected([](json& j) { j["vcpus"][0]["sregs"]["gdt"]["limit"] = 0x10000; }, "sregs.gdt.limit");
  expect_rejected([](json& j) { j["vcpus"][0]["sregs"]["cs"]["l"] = 2; }, "sregs.cs.l");
  expect_rejected([](json& j) { j["vcpus"][0]["mp_state"] = 7; }, "vcpu[0].mp_state");
  expect_rejected([](json& j) { j["vcpus"][0]["tsc_khz"] = 1ull << 32; }, "vcpu[0].tsc_khz");
  expect_rejected([](json& j) { j["vcpus"][0]["events"]["flags"] = 0x40; }, "events.flags");
  expect_rejected([](json& j) { j["vcpus"][0]["events"]["exception"]["nr"] = 32; }, "exception.nr");
  expect_rejected([](json& j) { j["vcpus"][0]["cpuid"][0]["flags"] = 8; }, "cpuid[0].flags");
  expect_rejected([](json& j) { j["vcpus"][0]["debugregs"]["flags"] = 1; }, "debugregs.flags");
  expect_rejected([](json& j) { j["vm"]["pit"]["channels"][1]["mode"] = 6; }, "vm.pit.channels[1].mode");
  expect_rejected([](json& j) { j["vm"]["pit"]["channels"][0]["count"] = 0x10001; }, "channels[0].count");
  expect_rejected([](json& j) { j["vm"]["pic_slave"]["init_state"] = 4; }, "vm.pic_slave.init_state");
  expect_rejected([](json& j) { j["vm"]["clock"]["flags"] = 1; }, "vm.clock.flags");
}

TEST(StateJson, RejectsBadBlobsAndCounts) {
  expect_rejected([](json& j) { j["vcpus"][0]["lapic"] = "AAAA"; }, "vcpu[0].lapic: blob is 3 bytes");
  expect_rejected([](json& j) { j["vcpus"][0]["lapic"] = "!!!!"; }, "vcpu[0].lapic: not canonical base64");
  expect_rejected([](json& j) { j["vcpus"][0]["xsave"] = 17; }, "vcpu[0].xsave: expected a base64");
  expect_rejected([](json& j) { j["vcpus"][0]["xsave"] = std::string(100000, 'A'); }, "vcpu[0].xsave: blob longer");
  expect_rejected(
      [](json& j) {
        std::vector<uint8_t> odd(4096 + 4, 0);  // not a multiple of 64
        j["vcpus"][0]["xsave"] = to_base64(odd);
      },
      "vcpu[0].xsave: size");
  expect_rejected([](json& j) { j["vcpus"][0]["xsave"] = to_base64(std::vector<uint8_t>(64)); }, "xsave: blob is 64 bytes");
  expect_rejected([](json& j) { j["vcpus"][0]["msrs"].push_back(j["vcpus"][0]["msrs"][0]); }, "duplicate MSR");
  expect_rejected(
      [](json& j) {
        for (int i = 0; i < 300; ++i) j["vcpus"][0]["cpuid"].push_back(j["vcpus"][0]["cpuid"][0]);
      },
      "vcpu[0].cpuid: 302 elements, at most 256");
  expect_rejected(
      [](json& j) {
        for (int i = 0; i < 17; ++i) j["vcpus"][0]["xcrs"].push_back({{"xcr", 0}, {"value", 1}});
      },
      "vcpu[0].xcrs");
  expect_rejected([](json& j) { j["vm"]["ioapic"]["redirtbl"].erase(0); }, "vm.ioapic.redirtbl: expected 24");
  expect_rejected([](json& j) { j["vm"]["ioapic"]["redirtbl"][3] = "x"; }, "vm.ioapic.redirtbl[3]");
  expect_rejected([](json& j) { j["vm"]["pit"]["channels"].erase(2); }, "vm.pit.channels: expected 3");
  expect_rejected([](json& j) { j["vcpus"][0]["sregs"]["interrupt_bitmap"].push_back(0); }, "interrupt_bitmap");
  expect_rejected(
      [](json& j) {
        for (int i = 0; i < 300; ++i) j["vcpus"].push_back(j["vcpus"][0]);
      },
      "machine.vcpus: 302 elements, at most 255");
}

}  // namespace
}  // namespace forkvm::state
