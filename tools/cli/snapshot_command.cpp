#include "tools/cli/snapshot_command.hpp"

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "forkvm/errors.hpp"
#include "snapshot/memory_digest.hpp"
#include "snapshot/snapshot.hpp"
#include "tools/cli/args.hpp"
#include "tools/cli/boot_command.hpp"
#include "tools/cli/snapshot_create.hpp"

namespace forkvm::cli {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

constexpr const char* kSnapshotUsage =
    "usage: forkvm snapshot inspect [--json] [--no-verify-memory] DIR\n"
    "       forkvm snapshot create [--vcpus N] [--memory MiB] [--warm-up CMD]... [--timeout S] DIR\n"
    "create boots the built-in image with the agent serving and snapshots it (create --help).\n"
    "inspect checks a snapshot directory and describes it: format version, machine config,\n"
    "memory size and allocated (sparse) bytes, the state and memory SHA-256 digests and whether\n"
    "they match, and each component's state size. The state digest is always checked; the\n"
    "memory digest unless --no-verify-memory. --json prints one JSON object instead.\n"
    "Exit status: 0 valid, 1 invalid (missing/malformed file, digest mismatch), 2 usage.\n";

struct InspectOptions {
  std::string dir;
  bool json = false;
  bool verify_memory = true;
};

/// Parses `inspect ARGS`; nullopt for --help.
std::optional<InspectOptions> parse_inspect(std::span<char* const> argv) {
  InspectOptions o;
  Args args(argv);
  std::vector<std::string> dirs;
  while (args.more()) {
    if (args.peek() == "--") {  // everything after "--" is a directory name
      args.next_option();
      for (auto& a : args.rest()) dirs.push_back(a);
      break;
    }
    if (args.peek().size() < 2 || args.peek()[0] != '-') {
      dirs.push_back(args.next_option());  // a plain word is returned unchanged
      continue;
    }
    const std::string opt = args.next_option();
    if (opt == "--help" || opt == "-h") return std::nullopt;
    if (opt == "--json") {
      o.json = true;
    } else if (opt == "--no-verify-memory") {
      o.verify_memory = false;
    } else {
      throw UsageError("unknown option '" + opt + "'");
    }
  }
  if (dirs.empty() || dirs.front().empty()) throw UsageError("inspect needs a snapshot directory");
  if (dirs.size() > 1)
    throw UsageError("inspect takes one directory, got " + std::to_string(dirs.size()));
  o.dir = dirs.front();
  return o;
}

/// What inspect found; `error` is set when the snapshot is invalid.
struct Report {
  std::optional<snapshot::SnapshotFiles> files;
  std::optional<std::string> memory_actual;  ///< format 1: the file's SHA-256, when computed
  std::optional<bool> memory_verified;       ///< whether the memory matched, when checked
  std::string error;
  bool ok() const { return error.empty(); }
};

Report examine(const InspectOptions& o) {
  Report r;
  try {
    // Hash the memory here rather than in open_snapshot(), so that a mismatch can still be
    // shown next to everything else.
    r.files = snapshot::open_snapshot(o.dir, {.verify_memory = false});
    if (o.verify_memory) {
      const auto& f = *r.files;
      const fs::path memory = f.dir / snapshot::kMemoryFile;
      if (f.state.memory_chunks) {  // chunk by chunk, as a verified restore checks it
        try {
          snapshot::verify_chunks(f.memory_fd.get(), f.state.memory_size, *f.state.memory_chunks,
                                  memory, -1, snapshot::verify_threads());
          r.memory_verified = true;
        } catch (const SnapshotError& e) {
          r.memory_verified = false;
          r.error = e.what();
        }
      } else {
        r.memory_actual =
            snapshot::hash_memory_file(f.memory_fd.get(), f.state.memory_size, memory);
        r.memory_verified = *r.memory_actual == f.state.memory_sha256;
        if (!*r.memory_verified) {
          r.error = memory.string() + ": SHA-256 mismatch: state.json says " +
                    f.state.memory_sha256 + ", the file hashes to " + *r.memory_actual;
        }
      }
    }
  } catch (const Error& e) {
    r.error = e.what();
  }
  return r;
}

json to_json(const InspectOptions& o, const Report& r) {
  json out = {{"path", o.dir}, {"ok", r.ok()}};
  if (!r.ok()) out["error"] = r.error;
  if (!r.files) return out;
  const auto& f = *r.files;
  const auto& s = f.state;
  out["format"] = {{"major", s.format.major}, {"minor", s.format.minor}};
  out["created"] = s.created;
  out["forkvm_version"] = s.forkvm_version;
  out["machine"] = {{"vcpus", s.machine.vcpus},
                    {"memory_mib", s.machine.memory_mib},
                    {"cmdline", s.machine.cmdline},
                    {"guest_cid", s.machine.guest_cid ? json(*s.machine.guest_cid) : json()}};
  json disks = json::array();
  for (const auto& d : s.machine.disks) {
    disks.push_back({{"id", d.id}, {"path", d.path}, {"size", d.size}, {"read_only", true},
                     {"sha256", d.sha256}});
  }
  out["machine"]["disks"] = disks;
  out["state"] = {{"sha256", f.state_sha256}, {"verified", true}};
  json mem = {{"file", snapshot::kMemoryFile},
              {"size", s.memory_size},
              {"allocated", f.memory_allocated}};
  if (!s.memory_sha256.empty()) mem["sha256"] = s.memory_sha256;
  if (s.memory_chunks) {
    mem["chunks"] = {{"size", s.memory_chunks->size}, {"count", s.memory_chunks->sha256.size()}};
  }
  if (r.memory_actual) mem["actual_sha256"] = *r.memory_actual;
  // null: not checked (--no-verify-memory)
  mem["verified"] = r.memory_verified ? json(*r.memory_verified) : json(nullptr);
  out["memory"] = mem;
  json comps = json::object();
  for (const auto& [name, value] : s.components.items())
    comps[name] = {{"bytes", value.dump().size()}};
  out["components"] = comps;
  return out;
}

void print_text(const InspectOptions& o, const Report& r) {
  std::cout << "snapshot     " << o.dir << "\n";
  if (r.files) {
    const auto& f = *r.files;
    const auto& s = f.state;
    std::cout << "format       " << s.format.major << "." << s.format.minor << "\n"
              << "created      " << s.created << " by forkvm " << s.forkvm_version << "\n"
              << "machine      " << s.machine.vcpus << " vCPU(s), " << s.machine.memory_mib
              << " MiB";
    if (s.machine.guest_cid) std::cout << ", vsock CID " << *s.machine.guest_cid;
    std::cout << "\ncmdline      " << s.machine.cmdline << "\n";
    for (const auto& d : s.machine.disks) {
      // The image is not re-hashed here: a restore checks it (RestoreOptions::verify_disks).
      std::cout << "disk         " << d.id << ": " << d.path << ", " << d.size
                << " bytes, read-only, sha256 " << d.sha256 << "\n";
    }
    std::cout << "state        sha256 " << f.state_sha256 << " (verified)\n"
              << "memory       " << s.memory_size << " bytes, " << f.memory_allocated
              << " allocated on disk\n"
              << "             ";
    if (s.memory_chunks) {
      std::cout << s.memory_chunks->sha256.size() << " chunk digests of "
                << s.memory_chunks->size << " bytes";
    } else {
      std::cout << "sha256 " << s.memory_sha256;
    }
    if (!r.memory_verified) {
      std::cout << " (not checked)\n";
    } else if (*r.memory_verified) {
      std::cout << " (verified)\n";
    } else if (r.memory_actual) {
      std::cout << " (MISMATCH: the file hashes to " << *r.memory_actual << ")\n";
    } else {
      std::cout << " (MISMATCH: see below)\n";
    }
    std::cout << "components   " << s.components.size() << "\n";
    for (const auto& [name, value] : s.components.items()) {
      std::cout << "  " << name << "  " << value.dump().size() << " bytes\n";
    }
  }
  std::cout << "result       " << (r.ok() ? "ok" : "INVALID") << "\n";
  if (!r.ok()) std::cerr << "forkvm snapshot inspect: " << r.error << "\n";
}

int inspect(std::span<char* const> argv) {
  const auto opts = parse_inspect(argv);
  if (!opts) {
    std::fputs(kSnapshotUsage, stdout);
    return 0;
  }
  const Report r = examine(*opts);
  if (opts->json) {
    std::cout << to_json(*opts, r).dump(2) << "\n";
  } else {
    print_text(*opts, r);
  }
  return r.ok() ? 0 : kExitSnapshotInvalid;
}

}  // namespace

int snapshot_command(std::span<char* const> args) {
  try {
    if (args.empty()) throw UsageError("missing subcommand");
    const std::string sub = args[0];
    if (sub == "--help" || sub == "-h") {
      std::fputs(kSnapshotUsage, stdout);
      return 0;
    }
    if (sub == "inspect") return inspect(args.subspan(1));
    if (sub == "create") return snapshot_create(args.subspan(1));
    throw UsageError("unknown subcommand '" + sub + "'");
  } catch (const UsageError& e) {
    std::cerr << "forkvm snapshot: " << e.what() << "\n" << kSnapshotUsage;
    return kExitUsage;
  }
}

}  // namespace forkvm::cli
