#include "snapshot/state_json.hpp"

#include <string>

#include "forkvm/errors.hpp"
#include "snapshot/sha256.hpp"
#include "vmm/arch/x86_64/layout.hpp"

#ifndef FORKVM_VERSION
#error "FORKVM_VERSION must be defined by the build (snapshot/CMakeLists.txt)"
#endif

namespace forkvm::snapshot {
namespace {

using nlohmann::json;

// The vsock CID range of vmm/vm_config.cpp: 0-2 are reserved, 2^32 - 1 is VMADDR_CID_ANY.
constexpr uint64_t kFirstGuestCid = 3;
constexpr uint64_t kLastGuestCid = 0xfffffffeull;
constexpr size_t kMaxShortString = 64;

[[noreturn]] void bad(const std::string& where, const std::string& what) {
  throw SnapshotError(where + ": " + what);
}

bool printable_ascii(std::string_view s) {
  for (char c : s) {
    if (c < 0x20 || c > 0x7e) return false;
  }
  return true;
}

const json& field(const json& obj, const char* key, const std::string& where,
                  const std::string& path) {
  const auto it = obj.find(key);
  if (it == obj.end()) bad(where, path + key + " is missing");
  return *it;
}

const json& object_field(const json& obj, const char* key, const std::string& where,
                         const std::string& path) {
  const json& v = field(obj, key, where, path);
  if (!v.is_object()) bad(where, path + key + " must be an object, got " + v.type_name());
  return v;
}

// Guest-controlled (via the snapshot file): nlohmann gives a non-negative integer that fits in
// 64 bits as number_unsigned, a negative one as number_integer, anything else (fractions,
// exponents, values past 2^64) as number_float.
uint64_t uint_field(const json& obj, const char* key, uint64_t min, uint64_t max,
                    const std::string& where, const std::string& path) {
  const json& v = field(obj, key, where, path);
  const std::string name = path + key;
  if (v.is_number_integer() && !v.is_number_unsigned()) {
    bad(where, name + " must be a non-negative integer, got " + std::to_string(v.get<int64_t>()));
  }
  if (v.is_number_float()) bad(where, name + " must be an integer below 2^64, got " + v.dump());
  if (!v.is_number_unsigned()) bad(where, name + " must be an integer, got " + v.type_name());
  const uint64_t n = v.get<uint64_t>();
  if (n < min || n > max) {
    bad(where, name + " is " + std::to_string(n) + ", must be " + std::to_string(min) + ".." +
                   std::to_string(max));
  }
  return n;
}

std::string string_field(const json& obj, const char* key, size_t max_len, const std::string& where,
                         const std::string& path) {
  const json& v = field(obj, key, where, path);
  const std::string name = path + key;
  if (!v.is_string()) bad(where, name + " must be a string, got " + v.type_name());
  const auto& s = v.get_ref<const std::string&>();
  if (s.size() > max_len) {
    bad(where, name + " is " + std::to_string(s.size()) + " bytes, at most " +
                   std::to_string(max_len) + " allowed");
  }
  if (!printable_ascii(s)) bad(where, name + " holds characters other than printable ASCII");
  return s;
}

bool valid_component_name(std::string_view name) {
  if (name.empty() || name.size() > kMaxComponentName) return false;
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '.' || c == ':' || c == '-';
    if (!ok) return false;
  }
  return true;
}

FormatVersion parse_format(const json& root, const std::string& where) {
  const json& f = object_field(root, "format", where, "");
  FormatVersion v;
  // Any integer is read first so that an unknown major version is reported as such, by number.
  const uint64_t major = uint_field(f, "major", 0, UINT64_MAX, where, "format.");
  if (major != kFormatMajor) {
    bad(where, "snapshot format major version " + std::to_string(major) +
                   " is not supported (this forkvm reads version " + std::to_string(kFormatMajor) +
                   ".x)");
  }
  v.major = kFormatMajor;
  // A newer minor version only adds optional fields, which this reader ignores.
  v.minor = static_cast<uint32_t>(uint_field(f, "minor", 0, UINT32_MAX, where, "format."));
  return v;
}

MachineConfig parse_machine(const json& root, const std::string& where) {
  const json& m = object_field(root, "machine", where, "");
  MachineConfig c;
  c.vcpus = static_cast<uint32_t>(uint_field(m, "vcpus", 1, layout::kMaxVcpus, where, "machine."));
  c.memory_mib =
      uint_field(m, "memory_mib", layout::kMinMemory >> 20, kMaxMemoryMib, where, "machine.");
  c.cmdline = string_field(m, "cmdline", layout::kCmdlineMaxSize - 1, where, "machine.");
  const auto cid = m.find("guest_cid");
  if (cid != m.end() && !cid->is_null()) {
    c.guest_cid = uint_field(m, "guest_cid", kFirstGuestCid, kLastGuestCid, where, "machine.");
  }
  return c;
}

}  // namespace

MachineConfig machine_config_of(const VmConfig& config) {
  MachineConfig m;
  m.vcpus = config.vcpus;
  m.memory_mib = config.memory_mib;
  m.cmdline = effective_cmdline(config);
  if (config.vsock) m.guest_cid = config.vsock->guest_cid;
  return m;
}

void check_machine_config(const MachineConfig& m, const std::string& where) {
  // One set of rules: round-trip through the JSON checks the reader uses.
  json root = {
      {"machine", {{"vcpus", m.vcpus}, {"memory_mib", m.memory_mib}, {"cmdline", m.cmdline}}}};
  if (m.guest_cid) root["machine"]["guest_cid"] = *m.guest_cid;
  parse_machine(root, where);
}

void check_components(const json& components, const std::string& where) {
  if (!components.is_object()) {
    bad(where, std::string("components must be an object, got ") + components.type_name());
  }
  for (const auto& [name, value] : components.items()) {
    if (!valid_component_name(name)) {
      bad(where, "component name is not 1-" + std::to_string(kMaxComponentName) +
                     " characters of [A-Za-z0-9_.:-]");
    }
    if (!value.is_object()) {
      bad(where, "component '" + name + "' must be an object, got " + value.type_name());
    }
  }
}

std::string encode_state(const State& state) {
  json root;
  root["format"] = {{"major", state.format.major}, {"minor", state.format.minor}};
  root["machine"] = {
      {"vcpus", state.machine.vcpus},
      {"memory_mib", state.machine.memory_mib},
      {"cmdline", state.machine.cmdline},
      {"guest_cid", state.machine.guest_cid ? json(*state.machine.guest_cid) : json(nullptr)}};
  root["memory"] = {
      {"file", kMemoryFile}, {"size", state.memory_size}, {"sha256", state.memory_sha256}};
  root["components"] = state.components;
  root["created"] = state.created;
  root["forkvm_version"] = state.forkvm_version;
  try {
    return root.dump(2) + "\n";
  } catch (const json::exception& e) {
    // dump() refuses strings that are not valid UTF-8 (from a component's state).
    throw SnapshotError(std::string("state.json: cannot encode: ") + e.what());
  }
}

State parse_state(std::string_view text, const std::string& where) {
  json root;
  try {
    // The callback sees the depth of every value as it is parsed, so a deeply nested document
    // is refused before it is built (the parser itself is iterative; the limit protects the
    // code that walks the result).
    root = json::parse(text, [](int depth, json::parse_event_t, json&) {
      if (depth > kMaxJsonDepth) {
        throw SnapshotError("JSON nested deeper than " + std::to_string(kMaxJsonDepth));
      }
      return true;
    });
  } catch (const json::exception& e) {
    bad(where, std::string("malformed JSON: ") + e.what());
  } catch (const SnapshotError& e) {
    bad(where, std::string("malformed JSON: ") + e.what());
  }
  if (!root.is_object()) bad(where, std::string("must be a JSON object, got ") + root.type_name());

  State s;
  s.format = parse_format(root, where);
  s.machine = parse_machine(root, where);
  const json& mem = object_field(root, "memory", where, "");
  const std::string file = string_field(mem, "file", kMaxShortString, where, "memory.");
  if (file != kMemoryFile) {
    // Never a path: a snapshot must not point the reader at files outside its directory.
    bad(where, "memory.file is '" + file + "', must be '" + kMemoryFile + "'");
  }
  s.memory_size = uint_field(mem, "size", 0, UINT64_MAX, where, "memory.");
  if (s.memory_size != s.machine.memory_bytes()) {
    bad(where, "memory.size " + std::to_string(s.memory_size) +
                   " does not match machine.memory_mib " + std::to_string(s.machine.memory_mib) +
                   " (" + std::to_string(s.machine.memory_bytes()) + " bytes)");
  }
  s.memory_sha256 = string_field(mem, "sha256", kMaxShortString, where, "memory.");
  if (!is_sha256_hex(s.memory_sha256)) {
    bad(where, "memory.sha256 is not 64 lowercase hex digits");
  }
  s.components = field(root, "components", where, "");
  check_components(s.components, where);
  s.created = string_field(root, "created", kMaxShortString, where, "");
  s.forkvm_version = string_field(root, "forkvm_version", kMaxShortString, where, "");
  return s;
}

std::string_view forkvm_version() noexcept { return FORKVM_VERSION; }

}  // namespace forkvm::snapshot
