// unit tier: parse_state() (the state.json container) on hostile content (wrong types, negative and huge
// numbers, bad strings, bad components) and Sha256 against known vectors.
#include "snapshot/state_file.hpp"

#include <gtest/gtest.h>

#include "forkvm/errors.hpp"
#include "snapshot/sha256.hpp"

namespace forkvm::snapshot {
namespace {

using nlohmann::json;

State valid_state() {
  State s;
  s.machine.vcpus = 4;
  s.machine.memory_mib = 256;
  s.machine.cmdline = "console=ttyS0";
  s.machine.guest_cid = 3;
  s.memory_size = 256ull << 20;
  s.memory_chunks = MemoryChunks{kMemoryChunkBytes, std::vector<std::string>(64, std::string(64, 'a'))};
  s.components = {{"serial", {{"ier", 0}}}};
  s.created = "2024-01-02T03:04:05Z";
  s.forkvm_version = "0.1.0";
  return s;
}

json valid_json() { return json::parse(encode_state(valid_state())); }

/// parse_state() must throw SnapshotError naming "state.json" and containing `says`.
void expect_bad(const json& j, const std::string& says) {
  try {
    parse_state(j.dump(), "/snap/state.json");
    ADD_FAILURE() << "accepted: " << j.dump().substr(0, 300);
  } catch (const SnapshotError& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.rfind("/snap/state.json: ", 0), 0u) << msg;
    EXPECT_NE(msg.find(says), std::string::npos) << "expected '" << says << "' in: " << msg;
  }
}

TEST(StateJson, EncodeParseRoundTrip) {
  const State s = valid_state();
  const State back = parse_state(encode_state(s), "state.json");
  EXPECT_EQ(back.format, s.format);
  EXPECT_EQ(back.machine, s.machine);
  EXPECT_EQ(back.memory_size, s.memory_size);
  EXPECT_EQ(back.memory_sha256, "");
  EXPECT_EQ(back.memory_chunks, s.memory_chunks);
  EXPECT_EQ(back.components, s.components);
  EXPECT_EQ(back.created, s.created);
  EXPECT_EQ(back.forkvm_version, s.forkvm_version);
  // guest_cid is optional: null and absent both mean "no vsock".
  json j = valid_json();
  j["machine"]["guest_cid"] = nullptr;
  EXPECT_FALSE(parse_state(j.dump(), "s").machine.guest_cid);
  j["machine"].erase("guest_cid");
  EXPECT_FALSE(parse_state(j.dump(), "s").machine.guest_cid);
}

struct Case {
  const char* name;
  std::function<void(json&)> edit;
  const char* says;
};

TEST(StateJson, RejectsEveryBadField) {
  const Case cases[] = {
      {"format missing", [](json& j) { j.erase("format"); }, "format: missing"},
      {"format not object", [](json& j) { j["format"] = 1; },
       "format: expected an object, got number"},
      {"major string", [](json& j) { j["format"]["major"] = "1"; },
       "format.major: expected an unsigned integer, got string"},
      {"major negative", [](json& j) { j["format"]["major"] = -1; },
       "format.major: expected an unsigned integer, got -1"},
      {"major 3", [](json& j) { j["format"]["major"] = 3; }, "major version 3 is not supported"},
      {"major 2^40", [](json& j) { j["format"]["major"] = uint64_t{1} << 40; },
       "major version 1099511627776 is not supported"},
      {"minor float", [](json& j) { j["format"]["minor"] = 0.5; },
       "format.minor: expected an unsigned integer, got 0.5"},
      {"machine missing", [](json& j) { j.erase("machine"); }, "machine: missing"},
      {"vcpus zero", [](json& j) { j["machine"]["vcpus"] = 0; },
       "machine.vcpus: value 0 is below the minimum 1"},
      {"vcpus 65", [](json& j) { j["machine"]["vcpus"] = 65; }, "machine.vcpus: value 65 is above the maximum 64"},
      {"vcpus negative", [](json& j) { j["machine"]["vcpus"] = -2; },
       "machine.vcpus: expected an unsigned integer, got -2"},
      {"vcpus bool", [](json& j) { j["machine"]["vcpus"] = true; },
       "machine.vcpus: expected an unsigned integer, got boolean"},
      {"vcpus null", [](json& j) { j["machine"]["vcpus"] = nullptr; },
       "machine.vcpus: expected an unsigned integer, got null"},
      {"memory_mib small", [](json& j) { j["machine"]["memory_mib"] = 1; },
       "machine.memory_mib: value 1 is below the minimum 64"},
      {"memory_mib 2^64-1", [](json& j) { j["machine"]["memory_mib"] = UINT64_MAX; },
       "machine.memory_mib: value 18446744073709551615 is above the maximum 1048576"},
      {"memory_mib 1e30", [](json& j) { j["machine"]["memory_mib"] = 1e30; },
       "machine.memory_mib: expected an unsigned integer, got 1e+30"},
      {"memory_mib string", [](json& j) { j["machine"]["memory_mib"] = "256"; },
       "machine.memory_mib: expected an unsigned integer, got string"},
      {"cmdline number", [](json& j) { j["machine"]["cmdline"] = 5; },
       "machine.cmdline: expected a string, got number"},
      {"cmdline control", [](json& j) { j["machine"]["cmdline"] = "a\nb"; },
       "machine.cmdline: holds characters other than printable ASCII"},
      {"cmdline huge", [](json& j) { j["machine"]["cmdline"] = std::string(70000, 'x'); },
       "machine.cmdline: string of 70000 bytes, at most 65535 allowed"},
      {"cid 2", [](json& j) { j["machine"]["guest_cid"] = 2; },
       "machine.guest_cid: value 2 is below the minimum 3"},
      {"cid any", [](json& j) { j["machine"]["guest_cid"] = 0xffffffffull; },
       "machine.guest_cid: value 4294967295 is above the maximum 4294967294"},
      {"cid string", [](json& j) { j["machine"]["guest_cid"] = "3"; },
       "machine.guest_cid: expected an unsigned integer, got string"},
      {"memory missing", [](json& j) { j.erase("memory"); }, "memory: missing"},
      {"memory array", [](json& j) { j["memory"] = json::array(); },
       "memory: expected an object, got array"},
      {"file path", [](json& j) { j["memory"]["file"] = "/dev/zero"; },
       "memory.file: must be 'memory', not '/dev/zero'"},
      {"size mismatch", [](json& j) { j["memory"]["size"] = 4096; },
       "memory.size: 4096 does not match machine.memory_mib 256 (268435456 bytes)"},
      {"size negative", [](json& j) { j["memory"]["size"] = -4096; },
       "memory.size: expected an unsigned integer, got -4096"},
      {"sha short", [](json& j) { j["memory"]["sha256"] = "abc"; },
       "memory.sha256: not 64 lowercase hex digits"},
      {"sha upper", [](json& j) { j["memory"]["sha256"] = std::string(64, 'A'); },
       "memory.sha256: not 64 lowercase hex digits"},
      {"sha number", [](json& j) { j["memory"]["sha256"] = 1; }, "memory.sha256: expected a string, got number"},
      {"chunks missing", [](json& j) { j["memory"].erase("chunks"); }, "memory.chunks: missing"},
      {"format 1 without sha", [](json& j) { j["format"] = {{"major", 1}, {"minor", 4}}; },
       "memory.sha256: missing"},
      {"components missing", [](json& j) { j.erase("components"); }, "components: missing"},
      {"components array", [](json& j) { j["components"] = json::array(); },
       "components must be an object, got array"},
      {"component string", [](json& j) { j["components"]["serial"] = "x"; },
       "component 'serial' must be an object, got string"},
      {"component name", [](json& j) { j["components"]["../x"] = json::object(); },
       "component name is not"},
      {"component empty name", [](json& j) { j["components"][""] = json::object(); },
       "component name is not"},
      {"component long name",
       [](json& j) { j["components"][std::string(65, 'a')] = json::object(); },
       "component name is not"},
      {"created missing", [](json& j) { j.erase("created"); }, "created: missing"},
      {"created number", [](json& j) { j["created"] = 0; }, "created: expected a string, got number"},
      {"version long", [](json& j) { j["forkvm_version"] = std::string(65, '1'); },
       "forkvm_version: string of 65 bytes, at most 64 allowed"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    json j = valid_json();
    c.edit(j);
    expect_bad(j, c.says);
  }
}

TEST(StateJson, UnknownFieldsOnlyFromANewerMinorVersion) {
  // At this format version every field is known: an extra one is refused wherever it is.
  for (const char* where : {"", "format", "machine", "memory"}) {
    SCOPED_TRACE(where);
    json j = valid_json();
    (*where ? j[where] : j)["injected"] = 1;
    expect_bad(j, std::string(*where ? std::string(where) + "." : "") + "injected: unknown field");
  }
  // Format 1 (still read): its whole-file digest, its optional chunks (1.4), every field known.
  json one = valid_json();
  one["format"] = {{"major", 1}, {"minor", 4}};
  one["memory"]["sha256"] = std::string(64, 'c');
  EXPECT_EQ(parse_state(one.dump(), "s").memory_sha256, std::string(64, 'c'));
  EXPECT_TRUE(parse_state(one.dump(), "s").memory_chunks);
  one["memory"].erase("chunks");
  one["format"]["minor"] = 3;
  EXPECT_FALSE(parse_state(one.dump(), "s").memory_chunks);
  one["memory"]["injected"] = 1;
  expect_bad(one, "memory.injected: unknown field");
  one["format"]["minor"] = 5;  // newer than any 1.x this reader knows: skipped
  EXPECT_NO_THROW(parse_state(one.dump(), "s"));
  // A newer minor version may add optional fields, which this reader skips.
  json newer = valid_json();
  newer["format"]["minor"] = kFormatMinor + 1;
  newer["machine"]["added_later"] = true;
  newer["added_later"] = "x";
  EXPECT_NO_THROW(parse_state(newer.dump(), "s"));
}

TEST(StateJson, NestingLimit) {
  json j = valid_json();
  json deep = json::object();
  for (int i = 0; i < 70; ++i) deep = json{{"d", deep}};
  j["components"]["serial"] = deep;
  expect_bad(j, "nested deeper than 64");
  json ok = json::object();
  for (int i = 0; i < 50; ++i) ok = json{{"d", ok}};
  j["components"]["serial"] = ok;
  EXPECT_NO_THROW(parse_state(j.dump(), "s"));
}

TEST(StateJson, CheckMachineConfigUsesTheReaderRules) {
  MachineConfig m = valid_state().machine;
  EXPECT_NO_THROW(check_machine_config(m, "w"));
  m.vcpus = 0;
  EXPECT_THROW(check_machine_config(m, "w"), SnapshotError);
  m = valid_state().machine;
  m.memory_mib = 63;
  EXPECT_THROW(check_machine_config(m, "w"), SnapshotError);
  m = valid_state().machine;
  m.cmdline = "tab\there";
  EXPECT_THROW(check_machine_config(m, "w"), SnapshotError);
}

TEST(StateJson, MachineConfigOfAVmConfig) {
  VmConfig c;
  c.vcpus = 3;
  c.memory_mib = 512;
  c.cmdline = "console=ttyS0";
  c.vsock = VsockConfig{9, "/tmp/v.sock"};
  const MachineConfig m = machine_config_of(c);
  EXPECT_EQ(m.vcpus, 3u);
  EXPECT_EQ(m.memory_mib, 512u);
  EXPECT_EQ(m.cmdline, effective_cmdline(c));
  EXPECT_EQ(m.guest_cid, 9u);
}

TEST(Sha256, KnownVectorsAndIncrementalFeeding) {
  // FIPS 180-4 examples.
  EXPECT_EQ(Sha256::of(std::string_view("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(Sha256::of(std::string_view("")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  Sha256 h;
  h.update(std::string_view("ab"));
  h.update(std::string_view(""));
  h.update(std::string_view("c"));
  EXPECT_EQ(h.final_hex(), Sha256::of(std::string_view("abc")));
  EXPECT_TRUE(is_sha256_hex(Sha256::of(std::string_view("x"))));
  EXPECT_FALSE(is_sha256_hex(std::string(63, 'a')));
  EXPECT_FALSE(is_sha256_hex(std::string(63, 'a') + "g"));
}

TEST(StateJson, DisksRoundTrip) {
  State s = valid_state();
  s.machine.disks = {DiskRecord{"rootfs", "/images/root.ext4", 512ull << 20, std::string(64, 'b'), false, std::nullopt},
                     DiskRecord{"data", "/images/d", 512, std::string(64, 'c'), false, std::nullopt}};
  EXPECT_EQ(parse_state(encode_state(s), "state.json").machine, s.machine);
  // Format 1.0 had no disks: absent and null both mean none.
  json j = valid_json();
  j["machine"].erase("disks");
  EXPECT_TRUE(parse_state(j.dump(), "s").machine.disks.empty());
  j["machine"]["disks"] = nullptr;
  EXPECT_TRUE(parse_state(j.dump(), "s").machine.disks.empty());
}

TEST(StateJson, TheNetDeviceRoundTripsAndIsOptional) {
  State s = valid_state();
  s.machine.net = true;
  EXPECT_EQ(parse_state(encode_state(s), "state.json").machine, s.machine);
  // Formats before 1.2 had no net device: absent and null both mean none.
  json j = json::parse(encode_state(s));
  j["machine"].erase("net");
  EXPECT_FALSE(parse_state(j.dump(), "s").machine.net);
  j["machine"]["net"] = nullptr;
  EXPECT_FALSE(parse_state(j.dump(), "s").machine.net);
  j["machine"]["net"] = 1;
  expect_bad(j, "machine.net");
  // vsock + 18 disks + net are 20 virtio devices: more than a machine has slots.
  s.machine.disks.clear();
  for (int i = 0; i < 18; ++i) {
    s.machine.disks.push_back(DiskRecord{"d" + std::to_string(i), "/images/d", 512, std::string(64, 'c'),
                                         false, std::nullopt});
  }
  expect_bad(json::parse(encode_state(s)), "20 virtio devices");
  s.machine.net = false;
  EXPECT_NO_THROW(parse_state(encode_state(s), "s"));
  VmConfig c;
  EXPECT_FALSE(machine_config_of(c).net);
  NetConfig net;
  net.fd = 3;
  c.net = net;
  EXPECT_TRUE(machine_config_of(c).net);
}

TEST(StateJson, SecretsAreRecordedAndOlderSnapshotsHaveNone) {
  State s = valid_state();
  s.machine.secrets = true;
  EXPECT_TRUE(parse_state(encode_state(s), "state.json").machine.secrets);
  EXPECT_NO_THROW(check_machine_config(s.machine, "w"));
  // Formats before 1.3 did not record it: absent (and null) read as no secrets.
  json j = json::parse(encode_state(s));
  j["format"]["minor"] = 2;
  j["machine"].erase("secrets");
  EXPECT_FALSE(parse_state(j.dump(), "s").machine.secrets);
  j["machine"]["secrets"] = nullptr;
  EXPECT_FALSE(parse_state(j.dump(), "s").machine.secrets);
  j["machine"]["secrets"] = "yes";
  expect_bad(j, "machine.secrets");
}

TEST(StateJson, CopyOnWriteDisksCarryTheirOverlay) {
  State s = valid_state();
  DiskRecord cow{"scratch", "/images/s.img", 1 << 20, std::string(64, 'b'), true,
                 DiskOverlay{overlay_file_name(0), {{0, 8192}, {65536, 512}}, std::string(64, 'c')}};
  s.machine.disks = {cow};
  EXPECT_EQ(parse_state(encode_state(s), "state.json").machine, s.machine);
  const json good = json::parse(encode_state(s));
  auto with = [&](const char* key, const json& value) {
    json j = good;
    j["machine"]["disks"][0]["overlay"][key] = value;
    return j;
  };
  expect_bad(with("file", "../memory"), "machine.disks[0].overlay.file: must be 'disk0.overlay'");
  expect_bad(with("file", "/etc/passwd"), "overlay.file");
  expect_bad(with("extents", json::array({{4096, 512}, {0, 512}})), "out of order");
  expect_bad(with("extents", json::array({{0, 8192}, {4096, 512}})), "overlaps");
  expect_bad(with("extents", json::array({{512, 512}})), "unaligned");
  expect_bad(with("extents", json::array({{0, 100}})), "unaligned");
  expect_bad(with("extents", json::array({{0, 0}})), "extents[0][1]: 0 is empty");
  expect_bad(with("extents", json::array({{(1 << 20) - 4096, 8192}})), "runs past the disk's end");
  expect_bad(with("extents", json::array({{uint64_t{1} << 40, 512}})), "extents[0][0]");
  expect_bad(with("extents", json::array({{-4096, 512}})), "unsigned integers");
  expect_bad(with("extents", json::array({json::array({0})})), "not [offset, length]");
  expect_bad(with("sha256", "nope"), "overlay.sha256");
  json no_overlay = good;
  no_overlay["machine"]["disks"][0].erase("overlay");
  expect_bad(no_overlay, "is missing for a copy-on-write disk");
  json ro_with_overlay = good;
  ro_with_overlay["machine"]["disks"][0]["read_only"] = true;
  expect_bad(ro_with_overlay, "is set for a read-only disk");
}

TEST(StateJson, RefusesBadDiskRecords) {
  State s = valid_state();
  s.machine.disks = {DiskRecord{"rootfs", "/images/root.ext4", 4096, std::string(64, 'b'), false, std::nullopt}};
  const json good = json::parse(encode_state(s));
  auto with = [&](const char* key, const json& value) {
    json j = good;
    j["machine"]["disks"][0][key] = value;
    return j;
  };
  expect_bad(with("path", "images/root.ext4"), "machine.disks[0].path: is not an absolute path");
  expect_bad(with("path", ""), "machine.disks[0].path");
  expect_bad(with("path", "/a\nb"), "printable ASCII");
  expect_bad(with("path", "/" + std::string(kMaxDiskPath, 'a')), "machine.disks[0].path");
  expect_bad(with("size", 0), "machine.disks[0].size");
  expect_bad(with("size", 1000), "512-byte sectors");
  expect_bad(with("size", -512), "machine.disks[0].size");
  expect_bad(with("read_only", false), "is missing for a copy-on-write disk");
  expect_bad(with("sha256", "abc"), "machine.disks[0].sha256");
  expect_bad(with("id", ""), "machine.disks[0].id");
  expect_bad(with("id", "a b"), "machine.disks[0].id");
  expect_bad(with("id", std::string(21, 'x')), "machine.disks[0].id");
  expect_bad(with("extra", 1), "extra");
  json twice = good;
  twice["machine"]["disks"].push_back(twice["machine"]["disks"][0]);
  expect_bad(twice, "two disks have the id 'rootfs'");
  json many = good;
  for (size_t i = 0; i < kMaxDisks; ++i) many["machine"]["disks"].push_back(good["machine"]["disks"][0]);
  expect_bad(many, "machine.disks");
  json not_array = good;
  not_array["machine"]["disks"] = json::object();
  expect_bad(not_array, "machine.disks");
}

}  // namespace
}  // namespace forkvm::snapshot
