// map_snapshot_memory(): restore's guest RAM is the snapshot's memory file mapped
// copy-on-write; nothing is read or copied here, so the cost does not depend on its size.
#include "forkvm/errors.hpp"
#include "snapshot/snapshot.hpp"

namespace forkvm::snapshot {

GuestMemory map_snapshot_memory(const SnapshotFiles& files) {
  const std::filesystem::path path = files.dir / kMemoryFile;
  if (!files.memory_fd) {
    throw SnapshotError(path.string() + ": the snapshot's memory file is not open");
  }
  try {
    // open_snapshot() has checked that the file is exactly memory_size bytes (and, with
    // verify_memory, its digest); map_private checks the size again against the descriptor.
    return GuestMemory::map_private(files.memory_fd.get(), files.state.memory_size);
  } catch (const SnapshotError& e) {
    throw SnapshotError(path.string() + ": " + e.what());
  }
}

}  // namespace forkvm::snapshot
