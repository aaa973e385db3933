#include "snapshot/state_file.hpp"

#include <string>

#include "base/json_reader.hpp"
#include "forkvm/errors.hpp"
#include "memory/layout.hpp"
#include "snapshot/sha256.hpp"

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
/// The overlay's block (CowDisk::kBlockBytes): extents start on it.
constexpr uint64_t kOverlayBlock = 4096;
/// Most extents an overlay may list (state.json's own cap bounds them too).
constexpr size_t kMaxOverlayExtents = 1u << 20;

[[noreturn]] void bad(const std::string& where, const std::string& what) {
  throw SnapshotError(where + ": " + what);
}

bool printable_ascii(std::string_view s) {
  for (char c : s) {
    if (c < 0x20 || c > 0x7e) return false;
  }
  return true;
}

/// A printable-ASCII string member of at most `max_len` bytes.
std::string ascii_string(JsonReader& r, const char* key, size_t max_len) {
  std::string v = r.string(key, max_len);
  if (!printable_ascii(v)) r.fail(key, "holds characters other than printable ASCII");
  return v;
}

/// Unknown members: a newer minor version may add optional fields, which this reader skips;
/// at the latest minor it knows of that major version or an older one every member is known,
/// so any other is refused.
void finish(const JsonReader& r, const FormatVersion& v) {
  if (v.minor <= (v.major == 1 ? kFormat1LastMinor : kFormatMinor)) r.finish();
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

FormatVersion parse_format(JsonReader& root) {
  JsonReader f = root.object("format");
  FormatVersion v;
  // Any integer is read first so that an unknown major version is reported as such, by number.
  const uint64_t major = f.num<uint64_t>("major");
  if (major != 1 && major != kFormatMajor) {
    f.fail("major", "snapshot format major version " + std::to_string(major) +
                        " is not supported (this forkvm reads versions 1.x and " +
                        std::to_string(kFormatMajor) + ".x)");
  }
  v.major = static_cast<uint32_t>(major);
  v.minor = f.num<uint32_t>("minor");
  finish(f, v);
  return v;
}

DiskOverlay parse_overlay(JsonReader o, uint64_t disk_size, size_t index, const FormatVersion& v) {
  DiskOverlay overlay;
  overlay.file = o.string("file", kMaxShortString);
  if (overlay.file != overlay_file_name(index)) {
    // Never a path: a snapshot must not point the reader at files outside its directory.
    o.fail("file", "must be '" + overlay_file_name(index) + "'");
  }
  const json& extents = o.array("extents", kMaxOverlayExtents);
  uint64_t next = 0;  // the first offset the next extent may start at
  for (size_t i = 0; i < extents.size(); ++i) {
    const std::string at = o.path("extents[" + std::to_string(i) + "]");
    if (!extents[i].is_array() || extents[i].size() != 2) o.fail("extents", at + " is not [offset, length]");
    for (const json& n : extents[i]) {
      if (!n.is_number_unsigned()) o.fail("extents", at + " holds something other than unsigned integers");
    }
    const auto offset = extents[i][0].get<uint64_t>(), length = extents[i][1].get<uint64_t>();
    if (offset >= disk_size) o.fail("extents", at + "[0]: " + std::to_string(offset) + " is past the disk's end");
    if (length == 0 || length > disk_size - offset) {
      o.fail("extents", at + "[1]: " + std::to_string(length) + " is empty or runs past the disk's end");
    }
    if (offset % kOverlayBlock != 0 || length % 512 != 0 || offset < next) {
      o.fail("extents", at + " is unaligned, overlaps or is out of order");
    }
    next = offset + length;
    overlay.extents.emplace_back(offset, length);
  }
  overlay.sha256 = o.string("sha256", kMaxShortString);
  if (!is_sha256_hex(overlay.sha256)) o.fail("sha256", "not 64 lowercase hex digits");
  finish(o, v);
  return overlay;
}

DiskRecord parse_disk(const nlohmann::json& j, const std::string& path, const std::string& where,
                      size_t index, const FormatVersion& v) {
  JsonReader d(j, path, where);
  DiskRecord disk;
  disk.id = ascii_string(d, "id", 20);
  if (disk.id.empty() || disk.id.find(' ') != std::string::npos) {
    d.fail("id", "must be 1-20 printable characters without spaces");
  }
  disk.path = ascii_string(d, "path", kMaxDiskPath);
  if (disk.path.empty() || disk.path.front() != '/') d.fail("path", "is not an absolute path");
  disk.size = d.num<uint64_t>("size", 512, UINT64_MAX - 511);
  if (disk.size % 512 != 0) d.fail("size", "is not a whole number of 512-byte sectors");
  // A disk the guest could write is a copy-on-write one, whose writes are in its overlay.
  disk.copy_on_write = !d.boolean("read_only");
  disk.sha256 = d.string("sha256", kMaxShortString);
  if (!is_sha256_hex(disk.sha256)) d.fail("sha256", "not 64 lowercase hex digits");
  if (disk.copy_on_write != d.present("overlay")) {
    d.fail("overlay", disk.copy_on_write ? "is missing for a copy-on-write disk"
                                         : "is set for a read-only disk");
  }
  if (disk.copy_on_write) disk.overlay = parse_overlay(d.object("overlay"), disk.size, index, v);
  finish(d, v);
  return disk;
}

MachineConfig parse_machine(JsonReader& root, const FormatVersion& v) {
  JsonReader m = root.object("machine");
  MachineConfig c;
  c.vcpus = m.num<uint32_t>("vcpus", 1, layout::kMaxVcpus);
  c.memory_mib = m.num<uint64_t>("memory_mib", layout::kMinMemory >> 20, kMaxMemoryMib);
  c.cmdline = ascii_string(m, "cmdline", layout::kCmdlineMaxSize - 1);
  // Optional: null and absent both mean "no vsock".
  if (m.present("guest_cid")) {
    c.guest_cid = m.num<uint64_t>("guest_cid", kFirstGuestCid, kLastGuestCid);
  }
  // Optional (format 1.1): absent or null means no disks.
  if (m.present("disks")) {
    const json& disks = m.array("disks", kMaxDisks);
    for (size_t i = 0; i < disks.size(); ++i) {
      c.disks.push_back(parse_disk(disks[i], m.path("disks[" + std::to_string(i) + "]"),
                                   m.context(), i, v));
      for (size_t k = 0; k < i; ++k) {
        if (c.disks[k].id == c.disks[i].id) {
          m.fail("disks", "two disks have the id '" + c.disks[i].id + "'");
        }
      }
    }
  }
  // Optional (format 1.2): absent or null means no net device.
  if (m.present("net")) c.net = m.boolean("net");
  // Optional (format 1.3): absent or null means no secrets (what older writers captured is
  // unknown; they never recorded it).
  if (m.present("secrets")) c.secrets = m.boolean("secrets");
  const size_t slots = c.disks.size() + (c.guest_cid ? 1 : 0) + (c.net ? 1 : 0);
  if (slots > layout::kMaxVirtioDevices) {
    m.fail("disks", std::to_string(slots) + " virtio devices (vsock, disks, net) do not fit the " +
                        std::to_string(layout::kMaxVirtioDevices) + " slots of a machine");
  }
  finish(m, v);
  return c;
}

json disks_json(const std::vector<DiskRecord>& disks) {
  json a = json::array();
  for (const DiskRecord& d : disks) {
    json disk = {{"id", d.id}, {"path", d.path}, {"size", d.size},
                 {"read_only", !d.copy_on_write}, {"sha256", d.sha256}};
    if (d.overlay) {
      json extents = json::array();
      for (const auto& [offset, length] : d.overlay->extents) extents.push_back({offset, length});
      disk["overlay"] = {{"file", d.overlay->file}, {"extents", extents}, {"sha256", d.overlay->sha256}};
    }
    a.push_back(std::move(disk));
  }
  return a;
}

}  // namespace

std::string overlay_file_name(size_t index) { return "disk" + std::to_string(index) + ".overlay"; }

MachineConfig machine_config_of(const VmConfig& config) {
  MachineConfig m;
  m.vcpus = config.vcpus;
  m.memory_mib = config.memory_mib;
  m.cmdline = effective_cmdline(config);
  if (config.vsock) m.guest_cid = config.vsock->guest_cid;
  m.net = config.net.has_value();
  return m;
}

void check_machine_config(const MachineConfig& m, const std::string& where) {
  // One set of rules: round-trip through the JSON checks the reader uses.
  json root = {
      {"machine", {{"vcpus", m.vcpus}, {"memory_mib", m.memory_mib}, {"cmdline", m.cmdline}}}};
  if (m.guest_cid) root["machine"]["guest_cid"] = *m.guest_cid;
  if (!m.disks.empty()) root["machine"]["disks"] = disks_json(m.disks);
  if (m.net) root["machine"]["net"] = true;
  if (m.secrets) root["machine"]["secrets"] = true;
  JsonReader r(root, "", where);
  parse_machine(r, FormatVersion{});
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
      {"guest_cid", state.machine.guest_cid ? json(*state.machine.guest_cid) : json(nullptr)},
      {"disks", disks_json(state.machine.disks)},
      {"net", state.machine.net},
      {"secrets", state.machine.secrets}};
  root["memory"] = {{"file", kMemoryFile}, {"size", state.memory_size}};
  if (!state.memory_sha256.empty()) root["memory"]["sha256"] = state.memory_sha256;
  if (state.memory_chunks) {
    root["memory"]["chunks"] = {{"size", state.memory_chunks->size},
                                {"sha256", state.memory_chunks->sha256}};
  }
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

namespace {

/// memory.chunks: a chunk size the reader accepts and exactly one well-formed digest per chunk
/// of the memory file (the count is checked before any digest is read).
MemoryChunks parse_chunks(JsonReader c, const State& s) {
  MemoryChunks out;
  out.size = c.num<uint64_t>("size", kMinMemoryChunkBytes, kMaxMemoryChunkBytes);
  if (out.size % 4096 != 0) c.fail("size", "not a multiple of 4096");
  const uint64_t n = chunk_count(s.memory_size, out.size);
  const json& list = c.array("sha256", n);
  if (list.size() != n) {
    c.fail("sha256", std::to_string(list.size()) + " digests for the " + std::to_string(n) +
                         " chunks of " + std::to_string(out.size) + " bytes in memory.size");
  }
  out.sha256.reserve(n);
  for (size_t i = 0; i < list.size(); ++i) {
    if (!list[i].is_string() || !is_sha256_hex(list[i].get_ref<const std::string&>())) {
      c.fail("sha256", "element " + std::to_string(i) + " is not 64 lowercase hex digits");
    }
    out.sha256.push_back(list[i].get<std::string>());
  }
  finish(c, s.format);
  return out;
}

}  // namespace

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
  JsonReader r(root, "", where);
  State s;
  s.format = parse_format(r);
  s.machine = parse_machine(r, s.format);
  JsonReader mem = r.object("memory");
  const std::string file = mem.string("file", kMaxShortString);
  if (file != kMemoryFile) {
    // Never a path: a snapshot must not point the reader at files outside its directory.
    mem.fail("file", "must be '" + std::string(kMemoryFile) + "', not '" + file + "'");
  }
  s.memory_size = mem.num<uint64_t>("size");
  if (s.memory_size != s.machine.memory_bytes()) {
    mem.fail("size", std::to_string(s.memory_size) + " does not match machine.memory_mib " +
                         std::to_string(s.machine.memory_mib) + " (" +
                         std::to_string(s.machine.memory_bytes()) + " bytes)");
  }
  // Format 1: the whole file's digest, and from 1.4 optionally the chunks'. Format 2: the
  // chunks' only (a whole-file digest there is read and checked for form, never needed).
  if (s.format.major == 1 || mem.present("sha256")) {
    s.memory_sha256 = mem.string("sha256", kMaxShortString);
    if (!is_sha256_hex(s.memory_sha256)) mem.fail("sha256", "not 64 lowercase hex digits");
  }
  if (s.format.major != 1 || mem.present("chunks")) {
    s.memory_chunks = parse_chunks(mem.object("chunks"), s);
  }
  finish(mem, s.format);
  s.components = r.member("components");
  check_components(s.components, where);
  s.created = ascii_string(r, "created", kMaxShortString);
  s.forkvm_version = ascii_string(r, "forkvm_version", kMaxShortString);
  finish(r, s.format);
  return s;
}

std::string_view forkvm_version() noexcept { return FORKVM_VERSION; }

}  // namespace forkvm::snapshot
