#include "tools/cli/disk_spec.hpp"

#include "tools/cli/args.hpp"

namespace forkvm::cli {

const char* const kDiskUsage =
    "--disk PATH[:ro|:rw|:cow][,id=ID] (repeatable) attaches a raw image as a virtio-blk disk:\n"
    "the first is /dev/vda, the next /dev/vdb, ...; :ro makes it read-only (many VMs may share\n"
    "it), :cow sends the guest's writes to a private copy-on-write overlay that is discarded\n"
    "with the VM (the image is never written; the disk forks with the VM), and :rw (the\n"
    "default) writes the file directly, locked so no other VM opens it; ID is the serial the\n"
    "guest sees (default disk0, disk1, ...).\n";

DiskConfig parse_disk_spec(const std::string& spec) {
  DiskConfig d;
  std::string path = spec;
  // Options after the first comma (a path with a comma cannot be given; say so rather than
  // guess).
  const auto comma = spec.find(',');
  if (comma != std::string::npos) {
    path = spec.substr(0, comma);
    std::string rest = spec.substr(comma + 1);
    while (!rest.empty()) {
      const auto next = rest.find(',');
      const std::string opt = rest.substr(0, next);
      rest = next == std::string::npos ? "" : rest.substr(next + 1);
      if (opt.rfind("id=", 0) == 0) {
        d.id = opt.substr(3);
        if (d.id.empty()) throw UsageError("--disk " + spec + ": id= is empty");
      } else {
        throw UsageError("--disk " + spec + ": unknown option '" + opt + "' (only id=ID)");
      }
    }
  }
  for (const std::string mode : {":ro", ":rw", ":cow"}) {
    if (path.ends_with(mode)) {
      d.read_only = mode == ":ro";
      d.copy_on_write = mode == ":cow";
      path.resize(path.size() - mode.size());
      break;
    }
  }
  if (path.empty()) throw UsageError("--disk " + spec + ": the image path is empty");
  d.path = path;
  return d;
}

}  // namespace forkvm::cli
